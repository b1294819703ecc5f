"""Simulators the daemon can start in-process (``[[simulator]]`` blocks, used by ``make run``).

Simulators are the ``borderlink.simulators`` entry points (``hardware/`` declares its own in
``pyproject.toml``): a type -> ``"module:function"``; the function takes the block's options
and returns an async context manager that serves while it is open. The daemon opens
every configured simulator before its adapters, so a demo source finds its peer listening.
Modules are imported lazily: the gateway never imports a device simulator it does not run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from gateway import plugins
from gateway.errors import ConfigError

SimulatorFactory = Callable[[Mapping[str, Any]], contextlib.AbstractAsyncContextManager[object]]

# Simulators registered in-process over the installed ``borderlink.simulators`` entry points.
REGISTRY: dict[str, str] = {}


def known_simulators() -> dict[str, str]:
    """Every simulator type a configuration may name -> ``"module:function"``."""
    return plugins.table(plugins.SIMULATORS, REGISTRY)


def load_simulator(kind: str) -> SimulatorFactory:
    """The factory registered under ``kind``; a ConfigError names what is missing."""
    known = known_simulators()
    target = known.get(kind)
    if target is None:
        msg = f"unknown simulator {kind!r}; allowed: {', '.join(sorted(known))}"
        raise ConfigError(msg)
    factory: SimulatorFactory = plugins.load(target, what=f"simulator {kind!r}")
    return factory
