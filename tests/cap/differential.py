"""Differential cases for the CAP reader and validator: what one implementation made of them.

The cases are the shared corpus alerts, a small CAP 1.2 document (the fuzz seed) and seeded
mutations of both: time stamps, points, polygons, circles, enumerations, pairs, namespaces and
raw bytes altered the ways hostile or sloppy senders alter them. :func:`outcome` records
everything the library says about one input — the rejection (class, reason, line, column,
message) or the model (its full ``repr``), the conversion warnings and every finding under each
profile — so two implementations agree only when they agree on all of it.

``tests/cap/data/differential.json`` holds the outcomes of the implementation before the
reader and validator were sped up; ``tests/cap/test_differential.py`` compares the current one
with it. Regenerate (only when a change of results is intended and reviewed) with::

    python -m tests.cap.differential > tests/cap/data/differential.json
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections.abc import Callable, Iterator
from itertools import product
from pathlib import Path

from cap_schemas.errors import CapParseError
from cap_schemas.parse import parse_alert_with_warnings
from cap_schemas.validate import PROFILES, validate

GOLDEN = Path(__file__).parent / "data" / "differential.json"

SEED = (
    b'<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
    b"<identifier>x</identifier><sender>s</sender><sent>2026-01-01T00:00:00-00:00</sent>"
    b"<status>Actual</status><msgType>Alert</msgType><scope>Public</scope></alert>"
)

# A bilingual CAP-CP alert in the shape the NAAD System sends (the same area in both blocks).
BILINGUAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>urn:oid:2.49.0.1.124.1.2026</identifier>
  <sender>cap-pac@canada.ca</sender>
  <sent>2026-07-01T12:00:00-04:00</sent>
  <status>Actual</status>
  <msgType>Update</msgType>
  <scope>Public</scope>
  <code>profile:CAP-CP:0.4</code>
  <references>cap-pac@canada.ca,urn:oid:2.49.0.1.124.1.2025,2026-07-01T11:00:00-04:00</references>
  <info>
    <language>en-CA</language>
    <category>Met</category>
    <event>thunderstorm</event>
    <responseType>Monitor</responseType>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <eventCode><valueName>profile:CAP-CP:Event:0.4</valueName><value>thunderstorm</value></eventCode>
    <effective>2026-07-01T12:00:00-04:00</effective>
    <expires>2026-07-01T18:00:00-04:00</expires>
    <senderName>Environment Canada</senderName>
    <headline>severe thunderstorm warning in effect</headline>
    <description>Conditions are favourable.</description>
    <instruction>Take cover.</instruction>
    <parameter><valueName>layer:SOREM:1.0:Broadcast_Immediately</valueName><value>No</value></parameter>
    <parameter><valueName>layer:EC-MSC-SMC:1.0:Broadcast_Intrusive</valueName><value>no</value></parameter>
    <area>
      <areaDesc>Ottawa North</areaDesc>
      <polygon>45.5,-75.9 45.6,-75.5 45.3,-75.4 45.2,-75.8 45.5,-75.9</polygon>
      <circle>45.4,-75.7 10</circle>
      <geocode><valueName>profile:CAP-CP:Location:0.3</valueName><value>3506008</value></geocode>
      <geocode><valueName>layer:EC-MSC-SMC:1.0:CLC</valueName><value>064100</value></geocode>
    </area>
  </info>
  <info>
    <language>fr-CA</language>
    <category>Met</category>
    <event>orages</event>
    <responseType>Monitor</responseType>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <eventCode><valueName>profile:CAP-CP:Event:0.4</valueName><value>thunderstorm</value></eventCode>
    <effective>2026-07-01T12:00:00-04:00</effective>
    <expires>2026-07-01T18:00:00-04:00</expires>
    <senderName>Environnement Canada</senderName>
    <headline>avertissement d'orages violents en vigueur</headline>
    <description>Les conditions sont propices.</description>
    <instruction>Mettez-vous a l'abri.</instruction>
    <parameter><valueName>layer:SOREM:1.0:Broadcast_Immediately</valueName><value>No</value></parameter>
    <area>
      <areaDesc>Ottawa-Nord</areaDesc>
      <polygon>45.5,-75.9 45.6,-75.5 45.3,-75.4 45.2,-75.8 45.5,-75.9</polygon>
      <circle>45.4,-75.7 10</circle>
      <geocode><valueName>profile:CAP-CP:Location:0.3</valueName><value>3506008</value></geocode>
    </area>
  </info>
</alert>
"""

# Values the sloppy and the hostile write where a CAP field is expected.
TIMES = (
    "2026-07-01T12:00:00-04:00",
    "2026-07-01T12:00:00+00:00",
    "2026-07-01T12:00:00-00:00",
    "2026-07-01T12:00:00Z",
    "2026-07-01T12:00:00.25-04:00",
    "2026-07-01T12:00:00",
    "2026-07-01 12:00:00-04:00",
    "2026-02-30T12:00:00-04:00",
    "2026-07-01T24:00:00-04:00",
    "2026-07-01T12:00:00+24:00",
    "2026-07-01T12:00:00-04:60",
    "\u0662\u0660\u0662\u0666-07-01T12:00:00-04:00",
    " 2026-07-01T12:00:00-04:00\n",
    "2026-07-01T12:00:00-0400",
    "",
)
POINT_TEXTS = (
    "45.5,-75.9 45.6,-75.5 45.3,-75.4 45.5,-75.9",
    "45.5,-75.9 45.6,-75.5 45.3,-75.4",
    "45.5,-75.9 45.6,-75.5 45.3,-75.4 45.2,-75.8",
    "45.5, -75.9 45.6,-75.5 45.3,-75.4 45.5,-75.9",
    "45.5,-75.9,1 45.6,-75.5 45.3,-75.4 45.5,-75.9",
    "45.5 -75.9 45.6,-75.5 45.3,-75.4 45.5,-75.9",
    "95.5,-75.9 45.6,-75.5 45.3,-75.4 95.5,-75.9",
    "45.5,-195.9 45.6,-75.5 45.3,-75.4 45.5,-195.9",
    "nan,-75.9 45.6,-75.5 45.3,-75.4 nan,-75.9",
    "inf,1 1,2 2,3 inf,1",
    "4_5.5,-75.9 45.6,-75.5 45.3,-75.4 4_5.5,-75.9",
    "45.5,-75.9\t45.6,-75.5\n45.3,-75.4  45.5,-75.9",
    ",-75.9 45.6,-75.5 45.3,-75.4 ,-75.9",
    "45.5,-75.9 45.6,x 45.3,-75.4 45.5,-75.9",
    "\u0664\u0665.5,-75.9 45.6,-75.5 45.3,-75.4 \u0664\u0665.5,-75.9",
    "",
    "   ",
)
CIRCLES = ("45.4,-75.7 10", "45.4,-75.7 -1", "45.4,-75.7", "95,-75.7 10", "45.4,-75.7 x", "")
WORDS = (
    "Actual",
    "Exercise",
    "Cancel",
    "Update",
    "Private",
    "Restricted",
    "Met",
    "Geo",
    "Very Likely",
    "Likely",
    "Unknown",
    "actual",
    "",
    " Severe ",
    "Immediate",
)
# Element contents replaced by a mutation, by the element's name.
FIELDS = {
    "sent": TIMES,
    "effective": TIMES,
    "onset": TIMES,
    "expires": TIMES,
    "polygon": POINT_TEXTS,
    "circle": CIRCLES,
    "status": WORDS,
    "msgType": WORDS,
    "scope": WORDS,
    "category": WORDS,
    "urgency": WORDS,
    "severity": WORDS,
    "certainty": WORDS,
    "responseType": WORDS,
    "language": ("en-CA", "fr-CA", "fr", "en_US", "", "x" * 9),
    "identifier": ("a b", "a,b", "x", "", "a&amp;b"),
    "sender": ("a b", "x@y", ""),
    "value": ("Yes", "No", "yes", "thunderstorm", "3506008", "064100", "12", "", "x" * 700),
    "valueName": (
        "profile:CAP-CP:Event:0.4",
        "profile:CAP-CP:Event:0.3",
        "profile:CAP-CP:Location:0.3",
        "layer:SOREM:2.0:WirelessImmediate",
        "layer:SOREM:2.0:WirelessText",
        "profile:CAP-CP:0.4:MinorChange",
        "SAME",
        "",
    ),
    "references": (
        "a,b,2026-07-01T11:00:00-04:00",
        "a,b,2026-07-01T11:00:00+00:00",
        "a,b",
        "a,b,c,d",
        "cap-pac@canada.ca,urn:oid:2.49.0.1.124.1.2026,2026-07-01T12:00:00-04:00",
        "a,b,2027-07-01T11:00:00-04:00 c,d,2026-07-01T11:00:00Z",
    ),
    "code": ("profile:CAP-CP:0.4", "profile:CAP-CP:0.3", "IPAWSv1.0", ""),
    "altitude": ("100", "x", ""),
    "ceiling": ("50", "200", "x"),
}
_ELEMENT = re.compile(rb"<(\w+)>([^<]*)</\1>")
NAMESPACES = (
    b"urn:oasis:names:tc:emergency:cap:1.1",
    b"urn:oasis:names:tc:emergency:cap:1.0",
    b"urn:oasis:names:tc:emergency:cap:9.9",
)
INSERTS = (
    b"<web>http://x</web>",
    b"<altitude>100</altitude><ceiling>50</ceiling>",
    b"<password>p</password>",
    b"<bogus>1</bogus>",
    b"<x:y xmlns:x='urn:x'>1</x:y>",
    b"<!-- note -->",
    b"<?pi data?>",
    b"<restriction>r</restriction>",
    b"<addresses>a b</addresses>",
    b"<note>n</note>",
    b"<polygon></polygon>",
    b"<resource><resourceDesc>map</resourceDesc><mimeType>image/png</mimeType>"
    b"<size>4</size><derefUri>AAAAAA==</derefUri><digest>" + b"0" * 40 + b"</digest></resource>",
)


def _mutate(base: bytes, rng: random.Random) -> bytes:
    """One seeded alteration of ``base``."""
    kind = rng.randrange(6)
    elements = list(_ELEMENT.finditer(base))
    if kind <= 2 and elements:  # replace a field's content with a value from its family
        match = rng.choice(elements)
        family = FIELDS.get(match.group(1).decode(), TIMES + POINT_TEXTS + WORDS)
        value = rng.choice(family).encode()
        return base[: match.start(2)] + value + base[match.end(2) :]
    if kind == 3:  # another namespace
        return base.replace(b"urn:oasis:names:tc:emergency:cap:1.2", rng.choice(NAMESPACES))
    if kind == 4 and elements:  # an element inserted before another one
        at = rng.choice(elements).start()
        return base[:at] + rng.choice(INSERTS) + base[at:]
    cut = rng.randrange(len(base) + 1)  # raw bytes in the middle
    return base[:cut] + rng.randbytes(rng.randrange(1, 9)) + base[cut:]


def generated_cases() -> Iterator[tuple[str, bytes]]:
    """The built-in documents and their seeded mutations (no corpus needed)."""
    for name, base in (("seed", SEED), ("bilingual", BILINGUAL)):
        yield name, base
        rng = random.Random(f"differential-{name}")
        for n in range(1500):
            data = base
            for _ in range(1 + n % 3):
                data = _mutate(data, rng)
            yield f"{name}-{n}", data


# The forms the faster reader and rules take apart, in pairs for the two blocks of the
# bilingual alert: a polygon repeated in both blocks (read once and shared), NaN (never
# shared: two NaN points are equal only as the same object), infinities, unclosed and short
# rings; times in the common form with offsets a process may or may not have seen before,
# out of range, or on days that do not exist.
EDGE_POLYGONS = (
    "45.5,-75.9 45.6,-75.5 45.3,-75.4 45.2,-75.8 45.5,-75.9",
    "45.5,-75.9 45.6,-75.5 45.3,-75.4 45.2,-75.8",
    "nan,-75.9 45.6,-75.5 45.3,-75.4 nan,-75.9",
    "45.5,-75.9 nan,-75.5 45.3,-75.4 45.5,-75.9",
    "45.5,-75.9 45.6,-75.5 45.3,nan 45.5,-75.9",
    "45.5,nan 45.6,-75.5 45.3,-75.4 45.5,nan",
    "NaN,1 2,3 4,5 NaN,1",
    "inf,1 2,3 4,5 inf,1",
    "-inf,1 inf,3 4,5 -inf,1",
    "1e400,1 2,3 4,5 1e400,1",
    "90,180 -90,-180 0,0 90,180",
    "90.0000001,0 1,1 2,2 90.0000001,0",
    "1,2 3,4 1,2",
    "45.5,-75.9\t45.6,-75.5\n45.3,-75.4 45.5,-75.9",
)
EDGE_TIMES = (
    "2026-07-01T12:00:00+05:30",
    "2026-07-01T12:00:00+14:00",
    "2026-07-01T12:00:00-12:00",
    "2026-07-01T12:00:00+00:00",
    "2026-07-01T12:00:00-00:00",
    "2026-07-01T12:00:00+23:59",
    "2026-07-01T12:00:00-23:60",
    "2026-07-01T12:00:00+24:00",
    "2026-02-29T12:00:00-04:00",
    "2028-02-29T12:00:00-04:00",
    "2026-04-31T12:00:00+05:30",
    "2026-07-01T25:00:00-04:00",
    "2026-07-01T12:60:00-04:00",
    "2026-07-01T12:00:60-04:00",
    "0001-01-01T00:00:00-04:00",
    "2026-07-01T12:00:00.5-04:00",
    "2026-07-01T12:00:00-04:00 ",
    "2026-07-01t12:00:00-04:00",
    "2026-07-01T12:00:00\u221204:00",
)
_POLYGON = b"45.5,-75.9 45.6,-75.5 45.3,-75.4 45.2,-75.8 45.5,-75.9"


def edge_cases() -> Iterator[tuple[str, bytes]]:
    """The bilingual alert with each pair of edge polygons in its two blocks, and with each
    edge time as ``sent``, as both blocks' ``effective`` and as a CAP 1.1 ``sent``."""
    first, rest = BILINGUAL.split(_POLYGON, 1)
    for n, (one, two) in enumerate(product(EDGE_POLYGONS, repeat=2)):
        yield f"edge-polygon-{n}", first + one.encode() + rest.replace(_POLYGON, two.encode())
    for n, when in enumerate(EDGE_TIMES):
        value = when.encode()
        sent = re.sub(rb"<sent>[^<]*</sent>", b"<sent>" + value + b"</sent>", BILINGUAL)
        yield f"edge-sent-{n}", sent
        effective = re.sub(
            rb"<effective>[^<]*</effective>", b"<effective>" + value + b"</effective>", BILINGUAL
        )
        yield f"edge-effective-{n}", effective
        yield f"edge-cap11-{n}", sent.replace(b"emergency:cap:1.2", b"emergency:cap:1.1")


def corpus_cases(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """A corpus alert and its seeded mutations."""
    yield name, data
    rng = random.Random(f"differential-{name}")
    for n in range(30):
        yield f"{name}-{n}", _mutate(data, rng)


def outcome(data: bytes) -> dict[str, object]:
    """Everything the library says about ``data``: accepted or not, rule ids, and a digest
    of the full detail (model, warnings, findings with messages, or the error)."""
    try:
        alert, warnings = parse_alert_with_warnings(data)
    except CapParseError as exc:
        detail = repr((type(exc).__name__, exc.reason, exc.line, exc.column, str(exc)))
        return {"accepted": False, "rules": [exc.reason], "digest": _digest(detail)}
    parts: list[object] = [repr(alert), warnings]
    rules: set[str] = set()
    for profile in PROFILES:
        findings = validate(alert, profile=profile)
        rules.update(f.rule for f in findings)
        parts.append([(f.severity, f.rule, f.xpath, f.message) for f in findings])
    return {"accepted": True, "rules": sorted(rules), "digest": _digest(repr(parts))}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def record(cases: Callable[[], Iterator[tuple[str, bytes]]]) -> dict[str, dict[str, object]]:
    return {case: outcome(data) for case, data in cases()}


def _all_cases() -> Iterator[tuple[str, bytes]]:
    from tests.cap.conftest import ALL_FILES, corpus_bytes  # noqa: PLC0415 - needs pytest

    yield from generated_cases()
    yield from edge_cases()
    for folder, name in ALL_FILES:
        yield from corpus_cases(name, corpus_bytes(folder, name))


def dumps(outcomes: dict[str, dict[str, object]]) -> str:
    """The outcomes as JSON, one case a line."""
    lines = [
        f"  {json.dumps(c)}: {json.dumps(o, sort_keys=True)}" for c, o in sorted(outcomes.items())
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    sys.stdout.write(dumps(record(_all_cases)))
