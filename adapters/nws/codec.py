"""api.weather.gov responses, sans-IO: the active-alerts index and alert URLs.

``GET /alerts/active?area=XX`` answers a GeoJSON ``FeatureCollection``; each feature's
``properties`` carry the CAP ``id`` (the identifier), ``sender``, ``sent`` and ``expires``, so
the poller can tell which alerts are new before fetching any CAP document. The CAP XML of one
alert is ``GET /alerts/{id}`` with ``Accept: application/cap+xml``. Source: the API's
documentation at https://www.weather.gov/documentation/services-web-api (User-Agent required,
rate limit not public, retry after about 5 s) as relayed in the reliability note §2.2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from adapters.feeds.base import FeedError
from cap_schemas.model import AlertKey
from cap_schemas.stream import canonical_key

__all__ = ["DEFAULT_BASE_URL", "IndexEntry", "active_url", "alert_url", "parse_active"]

DEFAULT_BASE_URL = "https://api.weather.gov"
_AREA = re.compile(r"[A-Z]{2}")


def check_area(area: str) -> str:
    """A state, territory or marine area code: two capital letters (``VT``, ``AM``...)."""
    if _AREA.fullmatch(area) is None:
        msg = f"area {area!r} is not a two-letter state, territory or marine area code"
        raise ValueError(msg)
    return area


def active_url(base_url: str, area: str) -> str:
    return f"{base_url.rstrip('/')}/alerts/active?{urlencode({'area': area})}"


def alert_url(base_url: str, identifier: str) -> str:
    return f"{base_url.rstrip('/')}/alerts/{quote(identifier, safe=':.-_')}"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One alert of the active index: enough to decide whether to fetch its CAP."""

    key: AlertKey
    expires: str | None


def parse_active(body: bytes) -> list[IndexEntry]:
    """Read the GeoJSON index; raise :class:`FeedError` when it is not one.

    A feature without id, sender or sent is skipped and counted by the caller through the
    returned ``skipped`` count of :func:`parse_active_counted`.
    """
    return parse_active_counted(body)[0]


def parse_active_counted(body: bytes) -> tuple[list[IndexEntry], int]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"active-alerts index is not JSON: {exc}", reason="syntax") from None
    except RecursionError:
        raise FeedError("active-alerts index is nested too deeply", reason="too_deep") from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise FeedError("active-alerts index has no 'features' list", reason="not_feed")
    entries: list[IndexEntry] = []
    skipped = 0
    for feature in data["features"]:
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            skipped += 1
            continue
        identifier, sender, sent = props.get("id"), props.get("sender"), props.get("sent")
        if not (
            isinstance(identifier, str)
            and isinstance(sender, str)
            and isinstance(sent, str)
            and identifier
            and sender
            and sent
        ):
            skipped += 1
            continue
        expires = props.get("expires")
        entries.append(
            IndexEntry(
                canonical_key(sender, identifier, sent),
                expires if isinstance(expires, str) else None,
            )
        )
    return entries, skipped
