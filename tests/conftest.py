"""Fixtures shared by every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Broker, run_mosquitto


@pytest.fixture
def mosquitto() -> Iterator[Broker]:
    """A real Mosquitto broker on a free loopback port, stopped after the test."""
    with run_mosquitto() as broker:
        yield broker
