"""CAP -> radio text: budgets, author's text first, languages, numbering, link characters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cap_schemas.model import Alert, AlertKey, MsgType, Severity, Status, Urgency, ValuePair
from gateway.errors import ConfigError
from gateway.model import RadioText
from gateway.translate.common import SOREM_WIRELESS_TEXT
from gateway.translate.text import (
    RADIO_PROFILES,
    radio_options,
    render_radio_text,
    split_parts,
    to_ascii,
)

APRS_BUDGET = 67


def _aprs(alert: Alert, lang: str = "en") -> RadioText:
    return render_radio_text(alert, budget=67, lang=lang, ascii_only=True, forbidden="|~{")


class TestContent:
    """The author's short text first, else composed from event, area and expiry."""

    def test_composed_english(self, eccc_alert: Callable[..., Alert]) -> None:
        text = render_radio_text(eccc_alert(), budget=160)
        assert text.parts == (
            "URGENT Severe Thunderstorm Warning for Windsor - Essex - Chatham-Kent "
            "until 15 Jul 00:00 UTC",
        )
        assert text.language == "en"

    def test_composed_french(self, eccc_alert: Callable[..., Alert]) -> None:
        text = render_radio_text(eccc_alert(), budget=160, lang="fr")
        assert text.parts == (
            "URGENT Avertissement d'orages violents pour Windsor - Essex - Chatham-Kent "
            "jusqu'au 15 juil. 00h00 UTC",
        )

    def test_wireless_text_first(self, eccc_alert: Callable[..., Alert]) -> None:
        wt = ValuePair("layer:SOREM:2.0:WirelessText", "Take shelter now")
        text = render_radio_text(eccc_alert(params=(wt,)), budget=67)
        assert text.parts == ("URGENT Take shelter now",)

    def test_nws_headline(self, us_alert: Callable[..., Alert]) -> None:
        text = render_radio_text(us_alert(), budget=200)
        assert text.parts == ("URGENT TORNADO WARNING FOR WAYNE COUNTY UNTIL 2:45 PM EDT",)

    def test_cmam_text_before_headline(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert(params=(ValuePair("CMAMtext", "Tornado: shelter now"),))
        assert render_radio_text(alert, budget=67).parts == ("URGENT Tornado: shelter now",)

    def test_both_languages(self, eccc_alert: Callable[..., Alert]) -> None:
        text = render_radio_text(eccc_alert(), budget=300, lang="both")
        assert " // " in text.parts[0]
        assert "Severe Thunderstorm Warning" in text.parts[0]
        assert "orages violents" in text.parts[0]
        assert text.language == "en,fr"

    def test_french_composed_when_alert_is_english_only(
        self, us_alert: Callable[..., Alert]
    ) -> None:
        text = render_radio_text(us_alert(), budget=300, lang="fr")
        assert text.parts[0].startswith("URGENT Avertissement de tornade pour Wayne, MI")

    def test_update_and_cancel_marked(
        self, eccc_alert: Callable[..., Alert], reference: AlertKey
    ) -> None:
        upd = eccc_alert(msg_type=MsgType.UPDATE, references=(reference,))
        can = eccc_alert(msg_type=MsgType.CANCEL, references=(reference,))
        assert "UPD: " in render_radio_text(upd, budget=200).parts[0]
        assert "CANCELLED: " in render_radio_text(can, budget=200).parts[0]
        assert "ANNULE: " in render_radio_text(can, budget=200, lang="fr").parts[0]

    def test_cancel_carries_no_call_to_act(
        self, eccc_alert: Callable[..., Alert], reference: AlertKey
    ) -> None:
        # A cancel whose wireless text repeats the original's instruction once read
        # "CANCELLED: Tornado warning ... Take shelter now."
        repeated = (
            ValuePair(SOREM_WIRELESS_TEXT, "Tornado warning for Windsor. Take shelter now."),
        )
        can = eccc_alert(msg_type=MsgType.CANCEL, references=(reference,), params=repeated)
        for lang in ("en", "fr", "both"):
            text = " ".join(render_radio_text(can, budget=400, lang=lang).parts)
            assert "shelter" not in text.lower()
            assert "abritez" not in text.lower()
            assert "until" not in text
        english = render_radio_text(can, budget=400, lang="en").parts[0]
        assert "CANCELLED: " in english
        assert "Windsor - Essex - Chatham-Kent" in english


class TestPriority:
    """Every part starts with the priority word."""

    def test_words(self, eccc_alert: Callable[..., Alert]) -> None:
        bi = ValuePair("layer:SOREM:1.0:Broadcast_Immediately", "Yes")
        assert render_radio_text(eccc_alert(params=(bi,)), budget=67).priority == "EMERG"
        assert render_radio_text(eccc_alert(), budget=67).priority == "URGENT"
        assert render_radio_text(eccc_alert(status=Status.TEST), budget=67).priority == "TEST"

    def test_minor_is_alert(self, eccc_alert: Callable[..., Alert]) -> None:
        from dataclasses import replace  # noqa: PLC0415

        alert = eccc_alert()
        infos = tuple(
            replace(i, severity=Severity.MINOR, urgency=Urgency.FUTURE) for i in alert.infos
        )
        assert render_radio_text(replace(alert, infos=infos), budget=67).priority == "ALERT"

    def test_extreme_immediate_is_emerg(self, us_alert: Callable[..., Alert]) -> None:
        alert = us_alert(severity=Severity.EXTREME)
        assert render_radio_text(alert, budget=67).priority == "EMERG"


class TestSizing:
    """Numbered parts on word boundaries, within the budget, link characters honoured."""

    def test_aprs_parts(self, eccc_alert: Callable[..., Alert]) -> None:
        text = _aprs(eccc_alert(), "both")
        assert len(text.parts) > 1
        n = len(text.parts)
        for i, part in enumerate(text.parts, 1):
            assert len(part) <= 67
            assert part.startswith(f"URGENT {i}/{n} ")
            assert part.isascii()
        words = " ".join(p.split(" ", 2)[2] for p in text.parts).split()
        whole = render_radio_text(eccc_alert(), budget=1000, lang="both", ascii_only=True)
        assert words == whole.parts[0].split()[1:]

    def test_forbidden_removed(self, eccc_alert: Callable[..., Alert]) -> None:
        wt = ValuePair("layer:SOREM:2.0:WirelessText", "a|b~c{d}")
        text = _aprs(eccc_alert(params=(wt,)))
        assert text.parts == ("URGENT abcd}",)

    def test_transliteration(self) -> None:
        assert (
            to_ascii("Événement « spécial » – cœur’s 5°")
            == 'Evenement " special " - coeur\'s 5 deg'
        )

    def test_long_word_cut(self) -> None:
        parts = split_parts("x" * 100, budget=30, prefix="ALERT")
        assert all(len(p) <= 30 for p in parts)
        assert "".join(p.split(" ", 2)[2] for p in parts) == "x" * 100

    def test_ten_parts_numbering_fits(self) -> None:
        text = " ".join(["word"] * 200)
        parts = split_parts(text, budget=40, prefix="EMERG")
        assert len(parts) >= 10
        assert all(len(p) <= 40 for p in parts)
        assert parts[-1].startswith(f"EMERG {len(parts)}/{len(parts)} ")

    def test_max_parts(self, eccc_alert: Callable[..., Alert]) -> None:
        text = render_radio_text(eccc_alert(), budget=20, lang="both", max_parts=3)
        assert len(text.parts) == 3
        assert text.parts[-1].endswith("...")

    def test_deterministic(self, eccc_alert: Callable[..., Alert]) -> None:
        a = _aprs(eccc_alert(), "both")
        b = _aprs(eccc_alert(), "both")
        assert a == b

    @settings(max_examples=60)
    @given(st.text(min_size=1, max_size=400), st.integers(min_value=16, max_value=200))
    def test_any_text_fits(self, text: str, budget: int) -> None:
        parts = split_parts(" ".join(text.split()) or "x", budget=budget, prefix="ALERT")
        assert all(len(p) <= budget for p in parts)


class TestOptions:
    """Route options pick a radio profile and may override it."""

    def test_profiles(self) -> None:
        assert RADIO_PROFILES["aprs"].budget == 67
        assert radio_options({"radio": "pager", "budget": 120})["budget"] == 120
        assert radio_options({"radio": "aprs"})["forbidden"] == "|~{"

    @pytest.mark.parametrize(
        "options",
        [{"radio": "telegraph"}, {"budget": "67"}, {"ascii_only": "yes"}],
    )
    def test_bad_options(self, options: dict[str, object]) -> None:
        with pytest.raises(ConfigError):
            radio_options(options)

    def test_bad_lang_and_budget(self, eccc_alert: Callable[..., Alert]) -> None:
        with pytest.raises(ConfigError, match="lang"):
            render_radio_text(eccc_alert(), budget=67, lang="de")
        with pytest.raises(ConfigError, match="budget"):
            render_radio_text(eccc_alert(), budget=8)


class TestCorpus:
    """Every published alert renders for every radio in every language."""

    def test_all(self, capcp_corpus: list[Alert], us_corpus: list[Alert]) -> None:
        for alert in [*capcp_corpus, *us_corpus]:
            for radio in RADIO_PROFILES:
                for lang in ("en", "fr", "both"):
                    text = render_radio_text(alert, **radio_options({"radio": radio, "lang": lang}))
                    assert text.parts
                    assert all(len(p) <= RADIO_PROFILES[radio].budget for p in text.parts)

    def test_french_from_the_french_block(self, capcp_corpus: list[Alert]) -> None:
        eccc = next(a for a in capcp_corpus if "wind" in str(a.infos[0].event_codes))
        text = render_radio_text(eccc, budget=300, lang="fr")
        assert "vents" in text.parts[0]
