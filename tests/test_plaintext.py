"""Plain text for radios (gateway/plaintext.py): one fold, one cleaner, one wrap, and the text
profiles radio sinks declare."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.errors import ConfigError
from gateway.plaintext import APRS_BULLETIN, APRS_MESSAGE, PROFILES, TextProfile, clean, fold, wrap
from gateway.translate.text import profile_mismatch


class TestFoldAndClean:
    """Accents and typography fold to ASCII; what a radio cannot send is removed."""

    def test_fold(self) -> None:
        assert fold("Événement « spécial » – cœur’s 5°") == 'Evenement " special " - coeur\'s 5 deg'

    def test_clean_per_profile(self) -> None:
        assert clean("a{b|c~d\tnow\x00!", profile=APRS_MESSAGE) == "abcd now !"
        assert clean("a{b|c~d", profile=APRS_BULLETIN) == "a{bcd"
        assert clean("Crue – Rivière", ascii_only=False) == "Crue – Rivière"


class TestWrap:
    """Greedy: as many words per line as fit; a word longer than a line is cut."""

    def test_lines(self) -> None:
        assert wrap("the quick brown fox", 10) == ["the quick", "brown fox"]
        assert wrap("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
        with pytest.raises(ValueError, match="width of 0"):
            wrap("a", 0)

    @given(st.text(max_size=400), st.integers(min_value=1, max_value=80))
    def test_never_longer_and_nothing_lost(self, text: str, width: int) -> None:
        lines = wrap(text, width)
        assert all(0 < len(line) <= width for line in lines)
        assert "".join("".join(line.split()) for line in lines) == "".join(text.split())


class TestProfiles:
    """A profile says what fits; a route whose text would not fit a sink is named."""

    def test_sized_text_goes_as_it_is(self) -> None:
        text = "EMERG 1/2 Tornado warning for Essex until 18:00 UTC take cover"
        assert APRS_MESSAGE.fits(text)
        assert APRS_MESSAGE.parts(text) == [text]
        assert not APRS_MESSAGE.fits(text + " now {1}")

    def test_route_against_sink(self) -> None:
        pager = TextProfile(80, ascii_only=True)
        assert profile_mismatch({"radio": "pager"}, pager) is None
        assert "parts of up to 120 characters; it takes 80" in str(
            profile_mismatch({"radio": "pager", "budget": 120}, pager)
        )
        assert "ASCII only" in str(profile_mismatch({"radio": "dmr", "budget": 80}, pager))
        assert "'{'" in str(profile_mismatch({"radio": "aprs-bulletin"}, APRS_MESSAGE))
        assert profile_mismatch({"radio": "aprs"}, PROFILES["aprs"]) is None


class TestRoutesAgainstRadios:
    """The daemon refuses to start with a text route that does not fit one of its radios."""

    SINK = (
        '[[sink]]\nname = "aprs"\ntype = "kiss"\nport = "socket://127.0.0.1:9"\n'
        'callsign = "VE3BDR-10"\nmode = "message"\naddressees = ["W2EOC"]\n\n'
        '[[route]]\nname = "radio"\nsinks = ["aprs"]\ntranslation = "text"\n'
    )

    def _daemon(self, tmp_path: Path, options: str) -> Daemon:
        path = tmp_path / "site.toml"
        path.write_text(
            f'[gateway]\ndata_dir = "{tmp_path}"\n[mqtt]\nenabled = false\n\n{self.SINK}'
            f"translation_options = {options}\n",
            encoding="utf-8",
        )
        return Daemon(load_config(path))

    def test_a_fitting_route_starts(self, tmp_path: Path) -> None:
        self._daemon(tmp_path, '{ radio = "aprs" }')

    @pytest.mark.parametrize(
        ("options", "why"),
        [
            ('{ radio = "generic" }', "parts of up to 160 characters; it takes 67"),
            ('{ radio = "aprs-bulletin" }', "text that may contain '{', which it forbids"),
        ],
    )
    def test_a_route_that_would_be_cut_again_is_refused(
        self, tmp_path: Path, options: str, why: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            self._daemon(tmp_path, options)
        assert str(caught.value) == (
            f"{tmp_path / 'site.toml'}: route 'radio'.translation_options: the text translation"
            f" would give sink 'aprs' {why}"
        )
