"""A SAME route through the daemon: a municipality's alert never reaches the ENDEC with its
whole province's code unless the route says ``widen = "province"``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cap_schemas.parse import parse_alert
from gateway.assembly import check_names
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.router import ROUTE_SKIPPED
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
)
from tests.helpers import Broker

SGC = "profile:CAP-CP:Location:0.3"
SINKS = (
    '[[sink]]\nname = "endec-strict"\ntype = "file"\npath = "spool/strict"\n\n'
    '[[sink]]\nname = "endec-wide"\ntype = "file"\npath = "spool/wide"\n'
)
ROUTES = (
    '[[route]]\nname = "same-strict"\nsinks = ["endec-strict"]\ntranslation = "same"\n'
    'translation_options = { station = "CKLW/AM", country = "CA" }\n\n'
    '[[route]]\nname = "same-wide"\nsinks = ["endec-wide"]\ntranslation = "same"\n'
    'translation_options = { station = "CKLW/AM", country = "CA", widen = "province" }\n'
)


def headers(folder: Path) -> list[str]:
    return sorted(p.read_text(encoding="ascii") for p in folder.glob("*.1"))


async def test_widen_province_is_the_routes_choice(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    config = load(daemon_toml(tmp_path, mosquitto.url, sinks=SINKS, routes=ROUTES))
    tornado = (("SAME", "TOR"),)
    sidney = cap(geocodes=((SGC, "5917010"),), event_codes=tornado)  # the table: all of BC
    windsor = cap(geocodes=((SGC, "3537039"),), event_codes=tornado)  # its forecast region
    strict, wide = tmp_path / "spool" / "strict", tmp_path / "spool" / "wide"
    skipped = ROUTE_SKIPPED.value(route="same-strict", sink="endec-strict", reason="widening")
    async with running_daemon(config):
        await publish_all(mosquitto, [sidney, windsor])

        async def planned_and_written() -> bool:
            refused = ROUTE_SKIPPED.value(
                route="same-strict", sink="endec-strict", reason="widening"
            )
            return (
                refused == skipped + 1
                and len(list(wide.glob("*.json"))) == 2
                and len(list(strict.glob("*.json"))) == 1
            )

        await poll_until(planned_and_written)
    strict_headers, wide_headers = headers(strict), headers(wide)
    assert len(strict_headers) == 1
    assert strict_headers[0].startswith("ZCZC-CIV-TOR-041420+")
    assert [h.split("+")[0] for h in wide_headers] == [
        "ZCZC-CIV-TOR-041420",
        "ZCZC-CIV-TOR-080000",
    ]


@pytest.mark.parametrize(
    ("translation", "option", "says"),
    [
        ("same", 'widen = "state"', "widen 'state' is not one of none, province"),
        ("ipaws", 'widen = "state"', "widen 'state' is not one of none, province"),
        ("same", 'over_31 = "drop"', "over_31 'drop' is not one of split, first"),
    ],
)
def test_a_bad_location_option_is_refused_with_the_route(
    tmp_path: Path, translation: str, option: str, says: str
) -> None:
    text = (
        '[mqtt]\nbroker = "mqtt://127.0.0.1:1"\n\n[[sink]]\nname = "a"\ntype = "mqtt"\n\n'
        f'[[route]]\nname = "endec"\nsinks = ["a"]\ntranslation = "{translation}"\n'
        f"translation_options = {{ {option} }}\n"
    )
    config = parse_config(tomllib.loads(text), path=tmp_path / "r.toml")
    with pytest.raises(ConfigError) as info:
        check_names(config)
    assert 'route #1 "endec".translation_options' in str(info.value)
    assert says in str(info.value)


async def test_ipaws_state_wide_row_only_with_widen(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    # A deployment crosswalk that pairs Greater Vancouver with all of Washington.
    (tmp_path / "walk.csv").write_text("us_same,sgc\n053000,5915\n", encoding="utf-8")
    options = f'sender = "eoc@whatcom.example.gov", crosswalk = "{tmp_path / "walk.csv"}"'
    routes = (
        '[[route]]\nname = "ipaws-strict"\nsinks = ["endec-strict"]\ntranslation = "ipaws"\n'
        f"translation_options = {{ {options} }}\n\n"
        '[[route]]\nname = "ipaws-wide"\nsinks = ["endec-wide"]\ntranslation = "ipaws"\n'
        f'translation_options = {{ {options}, widen = "province" }}\n'
    )
    config = load(daemon_toml(tmp_path, mosquitto.url, sinks=SINKS, routes=routes))
    surrey = cap(
        geocodes=((SGC, "5915004"),),
        event_codes=(("profile:CAP-CP:Event:0.4", "tornado"),),
    )
    strict, wide = tmp_path / "spool" / "strict", tmp_path / "spool" / "wide"
    skipped = ROUTE_SKIPPED.value(route="ipaws-strict", sink="endec-strict", reason="widening")
    async with running_daemon(config):
        await publish_all(mosquitto, [surrey])

        async def planned_and_written() -> bool:
            refused = ROUTE_SKIPPED.value(
                route="ipaws-strict", sink="endec-strict", reason="widening"
            )
            return refused == skipped + 1 and len(list(wide.glob("*.json"))) == 1

        await poll_until(planned_and_written)
    assert not list(strict.glob("*"))
    (translated,) = [parse_alert(p.read_bytes()) for p in wide.glob("*.1")]
    assert translated.infos[0].areas[0].geocode_values("SAME") == ("053000",)


# Around Windsor's reference point; Sidney to Victoria (Greater Victoria's zone point, and
# subdivisions the table maps only to all of BC); open water in Lake Erie.
WINDSOR = "42.25,-83.05 42.25,-82.93 42.33,-82.93 42.33,-83.05 42.25,-83.05"
SAANICH = "48.40,-123.55 48.40,-123.25 48.70,-123.25 48.70,-123.55 48.40,-123.55"
LAKE_ERIE = "42.2,-81.8 42.2,-81.6 42.4,-81.6 42.4,-81.8 42.2,-81.8"


async def test_the_polygon_step_through_a_route(
    mosquitto: Broker, tmp_path: Path, cap: CapFactory
) -> None:
    """A shape with no usable code reaches the ENDEC with the CLC zones it contains the
    reference points of; a shape that contains none is refused, not widened."""
    config = load(daemon_toml(tmp_path, mosquitto.url, sinks=SINKS, routes=ROUTES))
    tornado = (("SAME", "TOR"),)
    windsor = cap(geocodes=(), polygon=WINDSOR, event_codes=tornado)
    sidney = cap(geocodes=((SGC, "5917010"),), polygon=SAANICH, event_codes=tornado)
    circle = cap(geocodes=(), circle="42.2895,-82.9883 5", event_codes=tornado)
    erie = cap(geocodes=(), polygon=LAKE_ERIE, event_codes=tornado)
    strict, wide = tmp_path / "spool" / "strict", tmp_path / "spool" / "wide"
    skipped = ROUTE_SKIPPED.value(route="same-strict", sink="endec-strict", reason="translation")
    async with running_daemon(config):
        await publish_all(mosquitto, [windsor, sidney, circle, erie])

        async def planned_and_written() -> bool:
            refused = ROUTE_SKIPPED.value(
                route="same-strict", sink="endec-strict", reason="translation"
            )
            return refused == skipped + 1 and len(list(strict.glob("*.json"))) == 3

        await poll_until(planned_and_written)
    assert sorted(h.split("+")[0] for h in headers(strict)) == [
        "ZCZC-CIV-TOR-041420",
        "ZCZC-CIV-TOR-041420",
        "ZCZC-CIV-TOR-081600",
    ]
    # widen = "province" changes nothing here: the shape's zone replaces Sidney's 080000.
    assert sorted(h.split("+")[0] for h in headers(wide)) == [
        "ZCZC-CIV-TOR-041420",
        "ZCZC-CIV-TOR-041420",
        "ZCZC-CIV-TOR-081600",
    ]
