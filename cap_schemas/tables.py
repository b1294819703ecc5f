"""Code tables used to translate between CAP-CP, the IPAWS profile and SAME.

Every table is a CSV file in ``cap_schemas/data`` whose leading ``#`` lines name its source
and date. Tables are read once and cached; they are plain mappings of frozen dataclasses.

* :func:`same_events` — SAME event codes (``same_events.csv``).
* :func:`capcp_events` — CAP-CP event codes with English/French names (``capcp_events.csv``).
* :func:`capcp_to_same` / :func:`same_to_capcp` — the event map (``capcp_same_map.csv``).
* :func:`sgc_to_clc`, :func:`clc_names`, :func:`sgc_names` — Canadian locations
  (``sgc_clc.csv``, ``clc_names.csv``).
* :func:`fips_names`, :func:`state_names` — US county names from the ``addfips`` package data.
* :class:`Crosswalk` — a many-to-many table of US SAME county codes and Canadian SGC codes
  (``crosswalk_border.csv`` is the example shipped; deployments load their own).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cap_schemas.errors import CapError
from cap_schemas.rules.capcp import CapCpEvent
from cap_schemas.rules.capcp import capcp_events as _capcp_events

__all__ = [
    "CapCpEvent",
    "Crosswalk",
    "EventMapping",
    "SameEvent",
    "SgcEntry",
    "TableError",
    "capcp_events",
    "capcp_to_same",
    "clc_names",
    "fips_names",
    "same_events",
    "same_to_capcp",
    "sgc_entries",
    "sgc_entry",
    "sgc_names",
    "sgc_to_clc",
    "state_names",
]

#: Alert types Environment Canada writes in ``layer:EC-MSC-SMC:1.0:Alert_Type``; ``*`` = any.
ALERT_TYPES = ("warning", "watch", "advisory", "statement", "*")


class TableError(CapError):
    """A code table is missing, malformed or inconsistent."""


def _rows(text: str, where: str, columns: Iterable[str]) -> list[dict[str, str]]:
    body = "\n".join(line for line in text.splitlines() if line and not line.startswith("#"))
    reader = csv.DictReader(io.StringIO(body))
    wanted = list(columns)
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in wanted):
        msg = f"{where}: expected columns {', '.join(wanted)}, found {reader.fieldnames}"
        raise TableError(msg)
    return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _data(name: str, columns: Iterable[str]) -> list[dict[str, str]]:
    text = resources.files("cap_schemas").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return _rows(text, name, columns)


@dataclass(frozen=True, slots=True)
class SameEvent:
    """One SAME event code: names, significance and whether US EAS may emit it."""

    code: str
    name_en: str
    name_fr: str
    kind: str
    us_eas: bool

    @property
    def is_test(self) -> bool:
        return self.kind == "test"


@dataclass(frozen=True, slots=True)
class EventMapping:
    """One decision of the CAP-CP/SAME event map."""

    capcp: str
    alert_type: str
    same: str
    decision: str  # eccc | equivalent | nearest | none
    note: str


@functools.cache
def same_events() -> Mapping[str, SameEvent]:
    """SAME event code -> :class:`SameEvent`."""
    table: dict[str, SameEvent] = {}
    for row in _data("same_events.csv", ("code", "name_en", "name_fr", "kind", "us_eas")):
        code = row["code"]
        table[code] = SameEvent(
            code, row["name_en"], row["name_fr"], row["kind"], row["us_eas"] == "yes"
        )
    return table


def capcp_events() -> Mapping[str, CapCpEvent]:
    """CAP-CP event code -> :class:`CapCpEvent` (the CAP library's event list)."""
    return _capcp_events()


@functools.cache
def _event_map() -> tuple[
    Mapping[tuple[str, str], EventMapping], Mapping[tuple[str, str], EventMapping]
]:
    to_same: dict[tuple[str, str], EventMapping] = {}
    to_capcp: dict[tuple[str, str], EventMapping] = {}
    for row in _data(
        "capcp_same_map.csv", ("direction", "capcp", "alert_type", "same", "decision", "note")
    ):
        entry = EventMapping(
            row["capcp"], row["alert_type"], row["same"], row["decision"], row["note"]
        )
        if row["direction"] == "to_same":
            to_same[(entry.capcp, entry.alert_type)] = entry
        elif row["direction"] == "to_capcp":
            to_capcp[(entry.same, "*")] = entry
        else:
            msg = f"capcp_same_map.csv: unknown direction {row['direction']!r}"
            raise TableError(msg)
    return to_same, to_capcp


def event_map_to_same() -> Mapping[tuple[str, str], EventMapping]:
    """(CAP-CP event, alert type) -> mapping, as written in the table."""
    return _event_map()[0]


def event_map_to_capcp() -> Mapping[tuple[str, str], EventMapping]:
    """(SAME code, "*") -> mapping, as written in the table."""
    return _event_map()[1]


def capcp_to_same(event: str, alert_type: str | None = None) -> EventMapping | None:
    """The SAME code for a CAP-CP event; the alert type (watch, warning...) refines it."""
    table = _event_map()[0]
    kind = (alert_type or "*").strip().lower()
    return table.get((event, kind)) or table.get((event, "*"))


def same_to_capcp(code: str) -> EventMapping | None:
    """The CAP-CP event (and alert type) for a SAME event code."""
    return _event_map()[1].get((code, "*"))


@dataclass(frozen=True, slots=True)
class SgcEntry:
    """One row of ``sgc_clc.csv``: the CLC codes used for an SGC code, and where they come
    from (``basis``: ``source``, the community table as it is; ``division``, a subdivision
    the source maps to a whole province, given its census division's codes instead)."""

    sgc: str
    clcs: tuple[str, ...]
    scale: str
    name: str
    basis: str = "source"
    source_clcs: tuple[str, ...] = ()


@functools.cache
def _sgc_table() -> Mapping[str, SgcEntry]:
    table: dict[str, SgcEntry] = {}
    for row in _data("sgc_clc.csv", ("sgc", "clc", "scale", "name", "basis", "clc_source")):
        table[row["sgc"]] = SgcEntry(
            row["sgc"],
            tuple(row["clc"].split()),
            row["scale"],
            row["name"],
            row["basis"],
            tuple(row["clc_source"].split()),
        )
    return table


def sgc_to_clc(sgc: str) -> tuple[str, ...]:
    """The CLC codes covering an SGC code (empty when unknown)."""
    entry = _sgc_table().get(sgc)
    return entry.clcs if entry else ()


def sgc_entry(sgc: str) -> SgcEntry | None:
    """The ``sgc_clc.csv`` row of an SGC code (None when it is not listed)."""
    return _sgc_table().get(sgc)


def sgc_entries() -> Mapping[str, SgcEntry]:
    """Every row of ``sgc_clc.csv``, by SGC code."""
    return _sgc_table()


@functools.cache
def sgc_names() -> Mapping[str, str]:
    """SGC code -> name (empty string when the table has none)."""
    return {k: v.name for k, v in _sgc_table().items()}


@functools.cache
def clc_names() -> Mapping[str, str]:
    """CLC code -> area name."""
    return {row["clc"]: row["name"] for row in _data("clc_names.csv", ("clc", "name"))}


def _addfips_rows(name: str) -> list[dict[str, str]]:
    text = resources.files("addfips").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return _rows(text, f"addfips/{name}", ())


@functools.cache
def state_names() -> Mapping[str, str]:
    """State FIPS (2 digits) -> state name (Census Bureau, via the addfips package)."""
    return {row["fips"]: row["name"] for row in _addfips_rows("states.csv")}


@functools.cache
def fips_names() -> Mapping[str, str]:
    """County FIPS ``SSCCC`` -> "County, State" (Census Bureau 2020, via addfips)."""
    states = state_names()
    names: dict[str, str] = {}
    for row in _addfips_rows("counties_2020.csv"):
        key = row["statefp"] + row["countyfp"]
        state = states.get(row["statefp"], row["statefp"])
        names[key] = f"{row['name']}, {state}"
    return names


def same_location_name(code: str, *, country: str = "US") -> str | None:
    """Name of a 6-digit SAME location: a US PSSCCC (FIPS) or a Canadian CLC."""
    if len(code) != 6 or not code.isdigit():
        return None
    if country == "CA":
        return clc_names().get(code)
    if code == "000000":
        return "United States"
    ssccc = code[1:]
    if ssccc.endswith("000"):
        return state_names().get(ssccc[:2])
    return fips_names().get(ssccc)


@dataclass(frozen=True, slots=True)
class Crosswalk:
    """US SAME county codes <-> Canadian SGC codes facing them (many-to-many).

    SGC lookups also match a longer code by its census-division prefix: a 7-digit
    subdivision ``3526043`` (Niagara Falls) is covered by a row for ``3526`` (Niagara).
    """

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def from_text(cls, text: str, *, where: str = "crosswalk") -> Crosswalk:
        pairs: list[tuple[str, str]] = []
        for n, row in enumerate(_rows(text, where, ("us_same", "sgc")), start=1):
            us, sgc = row["us_same"], row["sgc"]
            if len(us) != 6 or not us.isdigit() or not sgc.isdigit():
                msg = f"{where} row {n}: us_same {us!r} must be 6 digits and sgc {sgc!r} digits"
                raise TableError(msg)
            pairs.append((us, sgc))
        return cls(tuple(pairs))

    @classmethod
    def from_file(cls, path: str | Path) -> Crosswalk:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"crosswalk {p}: {exc.strerror or exc}"
            raise TableError(msg) from exc
        return cls.from_text(text, where=str(p))

    @classmethod
    def default(cls) -> Crosswalk:
        return _default_crosswalk()

    @classmethod
    def empty(cls) -> Crosswalk:
        return cls(())

    def sgc_for_us(self, same_code: str) -> tuple[str, ...]:
        """SGC codes facing a US SAME code (``0SSCCC``; the subdivision digit is ignored)."""
        key = same_code[1:] if len(same_code) == 6 else same_code
        out: dict[str, None] = {}
        for us, sgc in self.pairs:
            if us[1:] == key:
                out.setdefault(sgc, None)
        return tuple(out)

    def us_for_sgc(self, sgc: str) -> tuple[str, ...]:
        """US SAME codes facing an SGC code (exact, or its province/division prefix row)."""
        out: dict[str, None] = {}
        for us, code in self.pairs:
            if sgc == code or (len(sgc) > len(code) and sgc.startswith(code) and len(code) >= 4):
                out.setdefault(us, None)
        return tuple(out)


@functools.cache
def _default_crosswalk() -> Crosswalk:
    text = (
        resources.files("cap_schemas")
        .joinpath("data/crosswalk_border.csv")
        .read_text(encoding="utf-8")
    )
    return Crosswalk.from_text(text, where="crosswalk_border.csv")
