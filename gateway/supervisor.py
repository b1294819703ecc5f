"""Keeping components alive: restart with capped exponential backoff and jitter.

Each adapter runs as one task of the daemon's :class:`asyncio.TaskGroup`, wrapped in
:meth:`Supervisor.supervise`: when it fails (connection lost, device gone, a bug) it is
logged, counted, and started again after a :class:`~gateway.backoff.Backoff` delay while
every other component keeps running. A component that ran for ``healthy_after`` seconds before
failing starts again from the initial delay. A :class:`~gateway.errors.ConfigError` is not
retried: it ends the daemon. Once :attr:`Supervisor.stopping` is set, a component that fails
is not started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from gateway.adapter import Clock, SystemClock
from gateway.backoff import Backoff
from gateway.errors import ConfigError
from gateway.metrics import REGISTRY

log = structlog.get_logger(__name__)

__all__ = ["COMPONENT_RESTARTS", "COMPONENT_UP", "Backoff", "Supervisor"]

COMPONENT_RESTARTS = REGISTRY.counter(
    "borderlink_component_restarts_total",
    "Times a supervised component failed and was restarted, by component",
    ("component",),
)
COMPONENT_UP = REGISTRY.gauge(
    "borderlink_component_up", "1 while a supervised component is running", ("component",)
)


class Supervisor:
    """Runs components and restarts the ones that fail."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        healthy_after: float = 10.0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.backoff = backoff or Backoff()
        self.healthy_after = healthy_after
        self.running: dict[str, bool] = {}
        self.failures: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        #: Set when the daemon stops: a component that fails then is not started again.
        self.stopping = asyncio.Event()

    async def supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` until it returns; restart it whenever it raises."""
        failures = 0
        while True:
            started = self.clock.monotonic()
            self.running[name] = True
            COMPONENT_UP.set(1, component=name)
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure of a component is retried
                if self.clock.monotonic() - started >= self.healthy_after:
                    failures = 0
                failures += 1
                delay = self.backoff.delay(failures)
                self.failures[name] = self.failures.get(name, 0) + 1
                self.last_error[name] = f"{type(exc).__name__}: {exc}"
                COMPONENT_RESTARTS.inc(component=name)
                log.warning(
                    "component_failed",
                    component=name,
                    error=self.last_error[name],
                    failures=failures,
                    restart_in=round(delay, 3),
                )
            else:
                log.info("component_finished", component=name)
                return
            finally:
                self.running[name] = False
                COMPONENT_UP.set(0, component=name)
            if self.stopping.is_set():
                return
            sleep = asyncio.ensure_future(self.clock.sleep(delay))
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                await asyncio.wait({sleep, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                stop.cancel()
            if self.stopping.is_set():
                return
