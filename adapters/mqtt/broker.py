"""The embedded broker: an amqtt broker in this process, on loopback (``broker = "embedded"``).

For the demo and for a single machine without a broker: MQTT 3.1.1 only (amqtt), anonymous,
plain TCP on ``127.0.0.1``. A deployment points ``[mqtt] broker`` at a real broker URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import structlog

from gateway.errors import AdapterConnectionError

log = structlog.get_logger(__name__)

__all__ = ["embedded_broker"]


def _config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 1883) -> AsyncIterator[object]:
    """Serve MQTT on ``host:port`` while the context is open."""
    from amqtt.broker import Broker  # noqa: PLC0415 - only when the embedded broker is used

    # amqtt logs every packet at INFO; keep our log readable.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    broker = Broker(_config(host, port))
    try:
        await broker.start()
    except Exception as exc:  # amqtt raises its own BrokerError or OSError
        raise AdapterConnectionError(
            f"embedded broker cannot listen on {host}:{port}: {exc}"
        ) from exc
    log.info("embedded_broker_started", host=host, port=port)
    try:
        yield broker
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), timeout=5)
        log.info("embedded_broker_stopped", host=host, port=port)
