"""The assembly's checks: every name a configuration uses exists in its registry.

:mod:`gateway.config` reads and checks the file's own structure; the names it holds (adapter
types, translations, simulators) are looked up here, where the registries are assembled, so
the configuration module imports none of them. The daemon calls :func:`check_names` when it is
built (``borderlink run``, ``check-config``) and when it reloads its routes.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.adapter import known_adapters
from gateway.config import Config, SinkConfig, SourceConfig, item_path
from gateway.errors import ConfigError
from gateway.messages import MESSAGE_RENDERERS
from gateway.simulators import known_simulators
from gateway.translate.registry import RENDERERS, check_options

__all__ = ["check_names"]


def check_names(config: Config) -> None:
    """Check the registry names (adapter types, translations, simulators) exist."""

    file = str(config.path)

    known = set(known_adapters())
    adapters: list[tuple[str, Sequence[SourceConfig | SinkConfig]]] = [
        ("source", config.sources),
        ("sink", config.sinks),
    ]
    for what, items in adapters:
        for i, item in enumerate(items):
            if item.type not in known:
                raise ConfigError.at(
                    file,
                    f"{item_path(what, i, item.name)}.type",
                    f"unknown adapter type {item.type!r}; allowed: {', '.join(sorted(known))}",
                )

    for i, route in enumerate(config.routes):
        if route.input == "incident":
            if route.translation not in MESSAGE_RENDERERS:
                raise ConfigError.at(
                    file,
                    f"{item_path('route', i, route.name)}.translation",
                    f"unknown translation {route.translation!r} for incident input;"
                    f" allowed: {', '.join(sorted(MESSAGE_RENDERERS))}",
                )
            continue
        if route.translation not in RENDERERS:
            raise ConfigError.at(
                file,
                f"{item_path('route', i, route.name)}.translation",
                f"unknown translation {route.translation!r};"
                f" allowed: {', '.join(sorted(RENDERERS))}",
            )
        try:
            check_options(route.translation, route.translation_options)
        except ConfigError as exc:
            place = f"{item_path('route', i, route.name)}.translation_options"
            raise ConfigError.at(file, place, str(exc)) from None
    sims = known_simulators()
    for i, sim in enumerate(config.simulators):
        if sim.type not in sims:
            raise ConfigError.at(
                file,
                f"{item_path('simulator', i, sim.name)}.type",
                f"unknown simulator {sim.type!r};"
                f" allowed: {', '.join(sorted(sims))}",
            )
