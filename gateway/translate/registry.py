"""Named translations a route can apply: ``name -> Renderer``.

A renderer is a pure function ``(alert, options) -> Rendered``; routes name one in config
(``translation = "ipaws"``) and the router calls it once per (alert, sink). The result is
stored in the outbox as it is, so a restart delivers exactly what was planned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cap_schemas.model import Alert
from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one sink receives for one alert.

    ``parts`` holds one payload per transmission: a CAP document is one part; radio text
    split to fit a 67-character APRS message is several, sent in order.
    """

    parts: tuple[bytes, ...]
    content_type: str
    attributes: Mapping[str, str] = field(default_factory=dict)


Renderer = Callable[[Alert, Mapping[str, Any]], Rendered]


def _identity(alert: Alert, _options: Mapping[str, Any]) -> Rendered:
    """The alert's original bytes, untouched (signatures stay valid)."""
    return Rendered((alert.raw,), "application/cap+xml")


def _lazy(name: str) -> Renderer:
    """A renderer of :mod:`gateway.translate.renderers`, imported on first use (the
    translations import this module for :class:`Rendered`)."""

    def render(alert: Alert, options: Mapping[str, Any]) -> Rendered:
        from gateway.translate import renderers  # noqa: PLC0415 -- import cycle

        function: Renderer = getattr(renderers, name)
        return function(alert, options)

    render.__name__ = name
    return render


RENDERERS: dict[str, Renderer] = {
    "identity": _identity,
    "ipaws": _lazy("render_ipaws"),
    "cap-cp": _lazy("render_capcp"),
    "same": _lazy("render_same"),
    "text": _lazy("render_text"),
    "edxl": _lazy("render_edxl"),
    "incident": _lazy("render_incident"),
    "incident-text": _lazy("render_incident_text"),
}


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse bad translation options when the configuration is loaded (ConfigError naming
    the option), rather than at the first alert. Renderers without options accept any."""
    get_renderer(name)
    from gateway.translate.renderers import OPTION_CHECKS  # noqa: PLC0415 -- import cycle

    check = OPTION_CHECKS.get(name)
    if check is not None:
        check(options)


def get_renderer(name: str) -> Renderer:
    try:
        return RENDERERS[name]
    except KeyError:
        allowed = ", ".join(sorted(RENDERERS))
        msg = f"unknown translation {name!r}; allowed: {allowed}"
        raise ConfigError(msg) from None
