"""Plain text for radios: one ASCII fold, one cleaner, one greedy word wrap, and text profiles.

Every radio that carries text has limits: how many characters one transmission takes, which
characters it can carry, whether several parts are numbered. A radio sink declares them as a
:class:`TextProfile` (its ``text_profile`` attribute, :class:`gateway.adapter.TextProfiled`);
the ``text`` translation sizes an alert's text to it once, and the sink sends the parts as
they are. The named profiles below are the defaults a route's ``radio = "..."`` picks.

* :func:`fold` -- 7-bit ASCII: typographic marks mapped (``’`` -> ``'``, ``«`` -> ``"``,
  ``œ`` -> ``oe``), accents removed by NFKD decomposition (``é`` -> ``e``), anything else
  dropped;
* :func:`clean` -- what a radio can send: folded when the profile is ASCII, forbidden
  characters dropped, control characters turned into spaces, runs of whitespace collapsed;
* :func:`wrap` -- lines of at most ``width`` characters cut at spaces (a word longer than a
  line is cut).

Sources: APRS 1.01 ch. 14 (message text at most 67 characters, printable ASCII; ``|``, ``~``
and ``{`` are not allowed in a message, ``{`` is allowed in a bulletin).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "APRS_BULLETIN",
    "APRS_MESSAGE",
    "PROFILES",
    "TextProfile",
    "clean",
    "fold",
    "wrap",
]

_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u202f": " ",
        "\u0153": "oe",
        "\u0152": "OE",
        "\u00e6": "ae",
        "\u00c6": "AE",
        "\u00df": "ss",
        "\u00b0": " deg",
    }
)


@dataclass(frozen=True, slots=True)
class TextProfile:
    """What one radio link takes: ``budget`` characters per part, ``ascii_only`` or any
    character, none of ``forbidden``; ``numbered`` parts carry ``k/n``."""

    budget: int
    ascii_only: bool = True
    forbidden: str = ""
    numbered: bool = True

    def __post_init__(self) -> None:
        if self.budget < 1:
            msg = f"a text budget of {self.budget} characters is too small"
            raise ValueError(msg)

    def fits(self, text: str) -> bool:
        """Whether ``text`` can be sent as one part as it is."""
        return len(text) <= self.budget and clean(text, profile=self) == text

    def parts(self, text: str) -> list[str]:
        """``text`` cleaned and cut to the budget (for text no translation sized)."""
        return wrap(clean(text, profile=self), self.budget)


# APRS 1.01 ch. 14: a message's text is at most 67 characters, without | ~ {.
APRS_MESSAGE = TextProfile(67, ascii_only=True, forbidden="|~{")
APRS_BULLETIN = TextProfile(67, ascii_only=True, forbidden="|~")

#: The profiles a route may name with ``radio = "..."``.
PROFILES: Mapping[str, TextProfile] = {
    "aprs": APRS_MESSAGE,
    "aprs-bulletin": APRS_BULLETIN,
    # Alphanumeric pagers: 80 characters is the common display/message size; configurable.
    "pager": TextProfile(80, ascii_only=True),
    # DMR talkgroup short text (Motorola/Hytera text messaging), kept to 140 characters.
    "dmr": TextProfile(140, ascii_only=False),
    "generic": TextProfile(160, ascii_only=False),
}


def fold(text: str) -> str:
    """7-bit ASCII (see the module docstring); control characters are kept for :func:`clean`."""
    mapped = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY))
    return mapped.encode("ascii", "ignore").decode("ascii")


def clean(text: str, *, profile: TextProfile | None = None, ascii_only: bool = True,
          forbidden: str = "") -> str:  # fmt: skip
    """``text`` as a radio can send it: folded to ASCII (``ascii_only``), ``forbidden``
    characters dropped, control characters as spaces, single spaces; a ``profile`` gives both
    settings."""
    if profile is not None:
        ascii_only, forbidden = profile.ascii_only, profile.forbidden
    if ascii_only:
        text = fold(text)
    kept = "".join(
        "" if ch in forbidden else ch if ch.isprintable() else " " for ch in text
    )
    return " ".join(kept.split())


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap: lines of at most ``width`` characters, cut at spaces; a word longer
    than a line is cut into pieces of ``width``."""
    if width < 1:
        msg = f"cannot wrap to a width of {width}"
        raise ValueError(msg)
    lines: list[str] = []
    current = ""
    for whole in text.split():
        word = whole
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if not word:
            continue
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current = f"{current} {word}"
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines
