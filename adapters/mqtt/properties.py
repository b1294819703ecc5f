"""paho-mqtt's MQTT 5 properties, without rebuilding paho's tables for every packet.

paho's ``Properties`` builds its tables of property names, identifiers and types anew for
each packet it decodes, and finds a name by walking them: every PUBLISH received and every
PUBACK of a publish (with or without properties) paid for both, about 6 % of the daemon's
CPU at 800 alerts/s. :class:`QuickProperties` keeps paho's tables on the class, built once
from paho's own, and answers the lookups from dictionaries; setting, packing and the checks
of a value stay paho's. :func:`install` has paho's packet decoder build these instead
(tests/mqtt/test_properties.py decodes the same packets with both and compares).
"""

from __future__ import annotations

from typing import Any

from paho.mqtt import _packet
from paho.mqtt import client as _client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["QuickProperties", "install"]

_TEMPLATE: Any = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
#: Attributes of the object itself, not MQTT properties (paho's own list).
_OWN = frozenset({"packetType", "types", "names", "properties"})
_IDENT_OF_NAME: dict[str, int] = {
    name.replace(" ", ""): ident for name, ident in _TEMPLATE.names.items()
}
_NAME_OF_IDENT: dict[int, str] = {ident: name for name, ident in _TEMPLATE.names.items()}
#: Subscription Identifier and User Property may come more than once (MQTT 5, 2.2.2.2).
_MULTIPLE = frozenset({11, 38})


class QuickProperties(Properties):
    """paho's ``Properties`` with its tables shared and its lookups by dictionary."""

    types = _TEMPLATE.types
    names = _TEMPLATE.names
    properties = _TEMPLATE.properties

    def __init__(self, packetType: int) -> None:  # noqa: N803 -- paho's signature
        object.__setattr__(self, "packetType", packetType)

    def getIdentFromName(self, compressedName: str) -> int:  # noqa: N802, N803 -- paho's
        return _IDENT_OF_NAME.get(compressedName, -1)

    def getNameFromIdent(self, identifier: int) -> str | None:  # noqa: N802 -- paho's
        return _NAME_OF_IDENT.get(identifier)

    def allowsMultiple(self, compressedName: str) -> bool:  # noqa: N802, N803 -- paho's
        return _IDENT_OF_NAME.get(compressedName, -1) in _MULTIPLE

    def clear(self) -> None:
        for name in [name for name in vars(self) if name not in _OWN]:
            delattr(self, name)


def install() -> None:
    """Have paho build :class:`QuickProperties` where it decodes packets (paho-mqtt 2.2's
    packet module) and where its client makes empty ones."""
    _packet.Properties = QuickProperties  # type: ignore[attr-defined]
    _client.Properties = QuickProperties  # type: ignore[attr-defined]
