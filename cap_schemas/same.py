"""The SAME (Specific Area Message Encoding) header of 47 CFR 11.31(c) and NWSI 10-1712.

A header reads ``ZCZC-ORG-EEE-PSSCCC-PSSCCC+TTTT-JJJHHMM-LLLLLLLL-``::

    ORG       originator: EAS, CIV, WXR, PEP (EAN is accepted on input: pre-2002 equipment)
    EEE       event code, three upper-case letters
    PSSCCC    1 to 31 location codes, six digits each (US: county subdivision + state and
              county FIPS; Canada: Environment Canada CLC)
    TTTT      valid time, hours and minutes: 15-minute steps up to one hour, 30-minute steps
              after (0015 0030 0045 0100 0130 ... 9930)
    JJJHHMM   day of the year and UTC time of the originator's initial release
    LLLLLLLL  the transmitting station, eight characters (space padded; "/" for "-"); kept
              as received, since some stations send fewer (``WTSP/TV``)

:class:`SameHeader` is the parsed form; ``SameHeader.parse(text)`` refuses anything else with
a :class:`SameHeaderError` saying what and where; ``header.to_text()`` writes it back
byte for byte. The header carries no year: :meth:`SameHeader.parse` takes the latest year
that does not put the issue time after ``now`` (allowing a day of clock skew), so a header
issued on 31 December and read on 1 January belongs to the previous year.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cap_schemas.errors import CapParseError

__all__ = [
    "EOM",
    "MAX_DURATION",
    "MAX_LOCATIONS",
    "ORIGINATORS",
    "PREFIX",
    "SameHeader",
    "SameHeaderError",
    "round_duration",
]

PREFIX = "ZCZC"
EOM = "NNNN"
MAX_LOCATIONS = 31
#: The longest valid time NWS encodes (99.5 hours).
MAX_DURATION = timedelta(hours=99, minutes=30)
#: Originators of 47 CFR 11.31(d); EAN was an originator until 2002 and is still read.
ORIGINATORS = frozenset({"EAS", "CIV", "WXR", "PEP"})
_READ_ORIGINATORS = ORIGINATORS | {"EAN"}

_HEADER = re.compile(
    r"ZCZC-(?P<org>[^-+]*)-(?P<event>[^-+]*)-(?P<locations>[^+]*)\+(?P<ttt>[^-]*)"
    r"-(?P<jjj>[^-]*)-(?P<station>[^-]*)-?"
)
_EVENT = re.compile(r"[A-Z]{3}")
_LOCATION = re.compile(r"\d{6}")
_DURATION = re.compile(r"(\d\d)(\d\d)")
_ISSUED = re.compile(r"(\d{3})(\d\d)(\d\d)")
_STATION_CHARS = re.compile(r"[\x20-\x7e]{8}")


class SameHeaderError(CapParseError):
    """A SAME header that does not follow 47 CFR 11.31(c); says which field and where."""

    def __init__(self, message: str, *, column: int | None = None, reason: str = "same") -> None:
        super().__init__(message, column=column, reason=reason)


def _valid_duration(value: timedelta) -> bool:
    minutes, rest = divmod(value.total_seconds(), 60)
    if rest or minutes < 0 or value > MAX_DURATION:
        return False
    step = 15 if minutes <= 60 else 30
    return minutes % step == 0


def round_duration(value: timedelta) -> timedelta:
    """Round a valid time up to the next SAME step (ECIG: expires - sent, rounded up).

    Up to one hour: 15-minute steps (0015, 0030, 0045, 0100); beyond: 30-minute steps.
    Capped at 99 h 30 min. A duration of zero or less is refused: the alert has expired.
    """
    seconds = value.total_seconds()
    if seconds <= 0:
        msg = f"valid time {value} is not positive: the alert has expired"
        raise SameHeaderError(msg, reason="expired")
    minutes = seconds / 60
    step = 15 if minutes <= 60 else 30
    rounded = timedelta(minutes=math.ceil(minutes / step) * step)
    return min(rounded, MAX_DURATION)


@dataclass(frozen=True, slots=True)
class SameHeader:
    """One SAME header. ``issued`` is timezone-aware UTC, minute precision."""

    originator: str
    event: str
    locations: tuple[str, ...]
    duration: timedelta
    issued: datetime
    station: str

    def __post_init__(self) -> None:
        if self.originator not in _READ_ORIGINATORS:
            msg = f"originator {self.originator!r} is not one of {', '.join(sorted(ORIGINATORS))}"
            raise SameHeaderError(msg, reason="originator")
        if not _EVENT.fullmatch(self.event):
            msg = f"event code {self.event!r} is not three upper-case letters"
            raise SameHeaderError(msg, reason="event")
        if not 1 <= len(self.locations) <= MAX_LOCATIONS:
            msg = f"{len(self.locations)} location codes; 1 to {MAX_LOCATIONS} are allowed"
            raise SameHeaderError(msg, reason="locations")
        for code in self.locations:
            if not _LOCATION.fullmatch(code):
                msg = f"location code {code!r} is not six digits (PSSCCC)"
                raise SameHeaderError(msg, reason="locations")
        if not _valid_duration(self.duration):
            msg = (
                f"valid time {self.duration} is not a SAME step (15 minutes to one hour, "
                "then 30 minutes, at most 99:30)"
            )
            raise SameHeaderError(msg, reason="duration")
        if self.issued.tzinfo is None:
            msg = "issued time must carry a timezone"
            raise SameHeaderError(msg, reason="issued")
        if not _STATION_CHARS.fullmatch(self.station.ljust(8)) or len(self.station) > 8:
            msg = f"station {self.station!r} must be at most 8 printable characters"
            raise SameHeaderError(msg, reason="station")
        if "-" in self.station or "+" in self.station:
            msg = f"station {self.station!r} must not contain '-' or '+' (use '/')"
            raise SameHeaderError(msg, reason="station")

    @property
    def expires(self) -> datetime:
        return self.issued + self.duration

    def to_text(self) -> str:
        minutes = int(self.duration.total_seconds() // 60)
        hours, mins = divmod(minutes, 60)
        issued = self.issued.astimezone(UTC)
        jjj = issued.timetuple().tm_yday
        return (
            f"{PREFIX}-{self.originator}-{self.event}-{'-'.join(self.locations)}"
            f"+{hours:02d}{mins:02d}-{jjj:03d}{issued:%H%M}-{self.station}-"
        )

    @classmethod
    def parse(cls, text: str, *, now: datetime | None = None) -> SameHeader:
        """Read one header; trailing whitespace is ignored, anything else must conform."""
        stripped = text.rstrip("\r\n\x00 ")
        if not stripped.startswith(PREFIX):
            msg = f"a SAME header starts with {PREFIX}-"
            raise SameHeaderError(msg, column=1, reason="prefix")
        match = _HEADER.fullmatch(stripped)
        if match is None:
            msg = "not ZCZC-ORG-EEE-PSSCCC...+TTTT-JJJHHMM-LLLLLLLL-"
            raise SameHeaderError(msg, column=1, reason="syntax")
        org = match["org"]
        if org not in _READ_ORIGINATORS:
            msg = f"originator {org!r} is not one of {', '.join(sorted(ORIGINATORS))}"
            raise SameHeaderError(msg, column=match.start("org") + 1, reason="originator")
        locations = tuple(match["locations"].split("-"))
        if len(locations) > MAX_LOCATIONS:
            msg = f"{len(locations)} location codes; at most {MAX_LOCATIONS} are allowed"
            raise SameHeaderError(msg, column=match.start("locations") + 1, reason="locations")
        for i, code in enumerate(locations):
            if not _LOCATION.fullmatch(code):
                msg = f"location {i + 1} {code!r} is not six digits (PSSCCC)"
                raise SameHeaderError(msg, column=match.start("locations") + 1, reason="locations")
        dmatch = _DURATION.fullmatch(match["ttt"])
        if dmatch is None or int(dmatch[2]) >= 60:
            msg = f"valid time {match['ttt']!r} is not HHMM"
            raise SameHeaderError(msg, column=match.start("ttt") + 1, reason="duration")
        duration = timedelta(hours=int(dmatch[1]), minutes=int(dmatch[2]))
        imatch = _ISSUED.fullmatch(match["jjj"])
        if imatch is None:
            msg = f"issue time {match['jjj']!r} is not JJJHHMM"
            raise SameHeaderError(msg, column=match.start("jjj") + 1, reason="issued")
        day, hour, minute = int(imatch[1]), int(imatch[2]), int(imatch[3])
        if not (1 <= day <= 366 and hour < 24 and minute < 60):
            msg = f"issue time {match['jjj']!r} is out of range (day 001-366, 00:00-23:59)"
            raise SameHeaderError(msg, column=match.start("jjj") + 1, reason="issued")
        station = match["station"]
        if not 1 <= len(station) <= 8:
            msg = f"station {station!r} is not 1 to 8 characters"
            raise SameHeaderError(msg, column=match.start("station") + 1, reason="station")
        issued = _infer_year(day, hour, minute, now or datetime.now(UTC))
        return cls(org, match["event"], locations, duration, issued, station)


#: How far ahead of our clock a header's issue time may be (the sender's clock may lead ours).
CLOCK_SKEW = timedelta(days=1)


def _infer_year(day: int, hour: int, minute: int, now: datetime) -> datetime:
    """The latest issue time with this day and time that is not after ``now`` (give or take
    :data:`CLOCK_SKEW`): a header heard now was issued in the past."""
    now = now.astimezone(UTC)
    candidates = []
    for year in (now.year - 1, now.year, now.year + 1):
        start = datetime(year, 1, 1, hour, minute, tzinfo=UTC)
        when = start + timedelta(days=day - 1)
        if when.year == year:  # day 366 exists in leap years only
            candidates.append(when)
    if not candidates:
        msg = f"day {day:03d} exists in no year near {now.year}"
        raise SameHeaderError(msg, reason="issued")
    past = [c for c in candidates if c <= now + CLOCK_SKEW]
    return max(past) if past else min(candidates)
