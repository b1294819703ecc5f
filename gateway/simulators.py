"""Simulators the daemon can start in-process (``[[simulator]]`` blocks, used by ``make run``).

``REGISTRY`` maps a simulator type to ``"module:function"``; the function takes the block's
options and returns an async context manager that serves while it is open. The daemon opens
every configured simulator before its adapters, so a demo source finds its peer listening.
Modules are imported lazily: the gateway never imports a device simulator it does not run.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from gateway.errors import ConfigError

SimulatorFactory = Callable[[Mapping[str, Any]], contextlib.AbstractAsyncContextManager[object]]

REGISTRY: dict[str, str] = {
    "naad": "hardware.sim_naad:simulator",
    "ipaws": "hardware.sim_feeds:ipaws_simulator",
    "nws": "hardware.sim_feeds:nws_simulator",
    "rf-channel": "hardware.rf_channel:simulator",
    "endec": "hardware.sim_endec:simulator",
}


def load_simulator(kind: str) -> SimulatorFactory:
    """The factory registered under ``kind``; a ConfigError names what is missing."""
    target = REGISTRY.get(kind)
    if target is None:
        msg = f"unknown simulator {kind!r}; allowed: {', '.join(sorted(REGISTRY))}"
        raise ConfigError(msg)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"simulator {kind!r}: cannot import {module_name}: {exc}"
        raise ConfigError(msg) from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        msg = f"simulator {kind!r}: {module_name} has no function {attr!r}"
        raise ConfigError(msg)
    result: SimulatorFactory = factory
    return result
