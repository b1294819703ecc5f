"""A SAME route through the daemon with an alert naming more than 31 places: the header
limit of 47 CFR 11.31(c). ``over_31 = "split"`` (the default) airs every place in several
headers; ``over_31 = "first"`` keeps the first 31 as the ECIG guide says and counts the rest.
A bad ``over_31`` is refused at start with the route (tests/daemon/test_locations.py)."""

from __future__ import annotations

from pathlib import Path

from gateway.translate.renderers import SAME_LOCATIONS_LEFT_OUT
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
)
from tests.helpers import Broker

SINKS = (
    '[[sink]]\nname = "endec-split"\ntype = "file"\npath = "spool/split"\n\n'
    '[[sink]]\nname = "endec-first"\ntype = "file"\npath = "spool/first"\n'
)
ROUTES = (
    '[[route]]\nname = "same-split"\nsinks = ["endec-split"]\ntranslation = "same"\n'
    'translation_options = { station = "KDTW/NWS" }\n\n'
    '[[route]]\nname = "same-first"\nsinks = ["endec-first"]\ntranslation = "same"\n'
    'translation_options = { station = "KDTW/NWS", over_31 = "first" }\n'
)
# 40 Michigan counties, odd FIPS numbers 001..079, in the order the alert names them.
COUNTIES = tuple(f"026{n:03d}" for n in range(1, 80, 2))


def codes(header: str) -> list[str]:
    """The location codes of a ``ZCZC-ORG-EEE-PSSCCC-...+TTTT-...`` header."""
    return header.split("+", maxsplit=1)[0].split("-")[3:]


async def test_more_than_31_places_split_or_first(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    config = load(daemon_toml(tmp_path, mosquitto.url, sinks=SINKS, routes=ROUTES))
    storm = cap(geocodes=tuple(("SAME", c) for c in COUNTIES), event_codes=(("SAME", "SVR"),))
    split, first = tmp_path / "spool" / "split", tmp_path / "spool" / "first"
    left_out = SAME_LOCATIONS_LEFT_OUT.value()
    async with running_daemon(config):
        await publish_all(mosquitto, [storm])

        async def written() -> bool:
            return bool(list(split.glob("*.json"))) and bool(list(first.glob("*.json")))

        await poll_until(written)
    split_parts = sorted(split.glob("*.[0-9]"))
    first_parts = sorted(first.glob("*.[0-9]"))
    assert [p.suffix for p in split_parts] == [".1", ".2"]
    one, two = (p.read_text(encoding="ascii") for p in split_parts)
    assert codes(one) == list(COUNTIES[:31])
    assert codes(two) == list(COUNTIES[31:])
    assert one.split("+")[1] == two.split("+")[1]  # same duration, issue time and station
    assert one.startswith("ZCZC-CIV-SVR-")  # the factory's sender is not ECCC
    assert [p.suffix for p in first_parts] == [".1"]
    assert codes(first_parts[0].read_text(encoding="ascii")) == list(COUNTIES[:31])
    assert SAME_LOCATIONS_LEFT_OUT.value() == left_out + 9

