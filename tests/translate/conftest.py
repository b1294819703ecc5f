"""Fixtures for the translation tests: bilingual ECCC-style and IPAWS-style alert factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cap_schemas.model import (
    Alert,
    AlertKey,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    Point,
    Polygon,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)
from cap_schemas.parse import parse_alert
from tests.helpers import corpus_dir

SENT = datetime(2026, 7, 14, 18, 0, 0, tzinfo=UTC)
EDT = timezone(timedelta(hours=-4))
ECCC = "cap-pac@canada.ca"
SQUARE = Polygon(
    (
        Point(42.30, -83.10),
        Point(42.30, -82.90),
        Point(42.10, -82.90),
        Point(42.10, -83.10),
        Point(42.30, -83.10),
    )
)


def _eccc_info(
    language: str,
    event: str,
    *,
    capcp: str,
    same: str | None,
    alert_type: str,
    params: tuple[ValuePair, ...],
    sgc: tuple[str, ...],
    clc: tuple[str, ...],
    expires: datetime | None,
) -> Info:
    codes: tuple[ValuePair, ...] = (ValuePair("profile:CAP-CP:Event:0.4", capcp),)
    if same:
        codes += (ValuePair("SAME", same),)
    geocodes = tuple(ValuePair("layer:EC-MSC-SMC:1.0:CLC", c) for c in clc) + tuple(
        ValuePair("profile:CAP-CP:Location:0.3", s) for s in sgc
    )
    french = language.startswith("fr")
    return Info(
        categories=(Category.MET,),
        event=event,
        urgency=Urgency.EXPECTED,
        severity=Severity.SEVERE,
        certainty=Certainty.LIKELY,
        language=language,
        response_types=(ResponseType.MONITOR,),
        event_codes=codes,
        expires=expires,
        sender_name="Environnement Canada" if french else "Environment Canada",
        headline="avertissement d'orages" if french else "thunderstorm warning",
        description="Des orages violents..." if french else "Severe thunderstorms are likely.",
        instruction="Abritez-vous." if french else "Take shelter.",
        parameters=(ValuePair("layer:EC-MSC-SMC:1.0:Alert_Type", alert_type), *params),
        areas=(
            Area(
                area_desc="Windsor - Essex - Chatham-Kent",
                polygons=(SQUARE,),
                geocodes=geocodes,
            ),
        ),
    )


@pytest.fixture
def eccc_alert() -> Callable[..., Alert]:
    """A bilingual Environment Canada alert; keywords change any part."""

    def make(**kw: Any) -> Alert:
        capcp = kw.pop("capcp", "thunderstorm")
        same = kw.pop("same", "SVR")
        alert_type = kw.pop("alert_type", "warning")
        params = kw.pop("params", (ValuePair("layer:SOREM:1.0:Broadcast_Immediately", "No"),))
        sgc = kw.pop("sgc", ("3537",))
        clc = kw.pop("clc", ("041420",))
        expires = kw.pop("expires", SENT + timedelta(hours=6))
        en_event, fr_event = kw.pop("events", ("thunderstorm", "orages"))
        infos = kw.pop(
            "infos",
            tuple(
                _eccc_info(
                    lang,
                    ev,
                    capcp=capcp,
                    same=same,
                    alert_type=alert_type,
                    params=params,
                    sgc=sgc,
                    clc=clc,
                    expires=expires,
                )
                for lang, ev in (("en-CA", en_event), ("fr-CA", fr_event))
            ),
        )
        fields: dict[str, Any] = {
            "identifier": "urn:oid:2.49.0.1.124.1234567890.2026",
            "sender": ECCC,
            "sent": SENT,
            "status": Status.ACTUAL,
            "msg_type": MsgType.ALERT,
            "scope": Scope.PUBLIC,
            "codes": ("profile:CAP-CP:0.4", "layer:SOREM:1.0", "layer:EC-MSC-SMC:1.0"),
            "infos": infos,
        }
        fields.update(kw)
        return Alert(**fields)

    return make


@pytest.fixture
def us_alert() -> Callable[..., Alert]:
    """An IPAWS-profile NWS alert for Wayne County, Michigan; keywords change any part."""

    def make(**kw: Any) -> Alert:
        same_codes = kw.pop("same_codes", ("026163",))
        params = kw.pop("params", ())
        severity = kw.pop("severity", Severity.SEVERE)
        urgency = kw.pop("urgency", Urgency.IMMEDIATE)
        certainty = kw.pop("certainty", Certainty.OBSERVED)
        event_code = kw.pop("event_code", "TOR")
        areas = kw.pop(
            "areas",
            (
                Area(
                    area_desc="Wayne, MI",
                    polygons=(SQUARE,),
                    circles=(Circle(Point(42.2, -83.0), 5.0),),
                    geocodes=(
                        *tuple(ValuePair("SAME", c) for c in same_codes),
                        ValuePair("UGC", "MIC163"),
                    ),
                ),
            ),
        )
        info = Info(
            categories=(Category.MET,),
            event="Tornado Warning",
            urgency=urgency,
            severity=severity,
            certainty=certainty,
            language="en-US",
            response_types=(ResponseType.SHELTER,),
            event_codes=(ValuePair("SAME", event_code),),
            expires=SENT.astimezone(EDT) + timedelta(minutes=45),
            sender_name="NWS Detroit/Pontiac MI",
            headline="Tornado Warning issued for Wayne County",
            description="At 2:00 PM EDT, a severe thunderstorm capable of producing a tornado.",
            instruction="TAKE COVER NOW!",
            parameters=(
                ValuePair("EAS-ORG", "WXR"),
                ValuePair("NWSheadline", "TORNADO WARNING FOR WAYNE COUNTY UNTIL 2:45 PM EDT"),
                *params,
            ),
            areas=areas,
        )
        fields: dict[str, Any] = {
            "identifier": "NWS-IDP-PROD-1234567-1000000",
            "sender": "w-nws.webmaster@noaa.gov",
            "sent": SENT.astimezone(EDT),
            "status": Status.ACTUAL,
            "msg_type": MsgType.ALERT,
            "scope": Scope.PUBLIC,
            "codes": ("IPAWSv1.0",),
            "infos": (info,),
        }
        fields.update(kw)
        return Alert(**fields)

    return make


@pytest.fixture
def reference() -> AlertKey:
    return AlertKey(ECCC, "urn:oid:2.49.0.1.124.1111111111.2026", "2026-07-14T16:00:00-00:00")


def _corpus(folder: str, *suffixes: str) -> Iterator[Path]:
    base = corpus_dir(folder)
    return iter(sorted(p for p in base.iterdir() if p.suffix.lower() in suffixes))


@pytest.fixture(scope="session")
def capcp_corpus() -> list[Alert]:
    return [parse_alert(p.read_bytes()) for p in _corpus("cap-cp", ".xml", ".cap")]


@pytest.fixture(scope="session")
def us_corpus() -> list[Alert]:
    paths = list(_corpus("ipaws", ".xml", ".cap")) + list(_corpus("nws", ".cap", ".xml"))
    return [parse_alert(p.read_bytes()) for p in paths if "atom" not in p.name]
