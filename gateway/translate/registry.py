"""Named translations a route can apply: ``name -> Renderer``.

A renderer is a pure function ``(alert, options) -> Rendered``; routes name one in config
(``translation = "ipaws"``) and the router calls it once per (alert, sink). The result is
stored in the outbox as it is, so a restart delivers exactly what was planned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cap_schemas.model import Alert
from gateway.errors import ConfigError
from gateway.model import Rendered
from gateway.translate import renderers

__all__ = ["RENDERERS", "Renderer", "check_options", "get_renderer"]

Renderer = Callable[[Alert, Mapping[str, Any]], Rendered]


def _identity(alert: Alert, _options: Mapping[str, Any]) -> Rendered:
    """The alert's original bytes, untouched (signatures stay valid)."""
    return Rendered((alert.raw,), "application/cap+xml")


RENDERERS: dict[str, Renderer] = {
    "identity": _identity,
    "ipaws": renderers.render_ipaws,
    "cap-cp": renderers.render_capcp,
    "same": renderers.render_same,
    "text": renderers.render_text,
    "edxl": renderers.render_edxl,
    "incident": renderers.render_incident,
    "incident-text": renderers.render_incident_text,
}


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse bad translation options when the configuration is loaded (ConfigError naming
    the option), rather than at the first alert. Renderers without options accept any."""
    get_renderer(name)
    allowed = renderers.OPTION_NAMES.get(name, frozenset())
    unknown = sorted(set(options) - allowed)
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        msg = f"unknown option(s) {', '.join(unknown)} for {name!r}; allowed: {names}"
        raise ConfigError(msg)
    check = renderers.OPTION_CHECKS.get(name)
    if check is not None:
        check(options)


def get_renderer(name: str) -> Renderer:
    try:
        return RENDERERS[name]
    except KeyError:
        allowed = ", ".join(sorted(RENDERERS))
        msg = f"unknown translation {name!r}; allowed: {allowed}"
        raise ConfigError(msg) from None
