"""The one backoff every retry loop uses (gateway/backoff.py)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from gateway.backoff import Backoff

ROOT = Path(__file__).resolve().parents[1]


class TestBackoff:
    """Waits grow by the factor up to the ceiling; jitter only shortens them."""

    def test_growth_and_ceiling_without_jitter(self) -> None:
        policy = Backoff(initial=1.0, maximum=10.0, factor=2.0, jitter=0.0)
        assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]

    def test_jitter_stays_within_its_band(self) -> None:
        policy = Backoff(initial=4.0, maximum=4.0, jitter=0.25, rng=random.Random(7))
        waits = [policy.delay(3) for _ in range(500)]
        assert min(waits) >= 3.0
        assert max(waits) <= 4.0
        assert max(waits) - min(waits) > 0.5  # it does spread

    def test_weeks_of_failures_do_not_overflow(self) -> None:
        assert Backoff(initial=1.0, maximum=60.0, jitter=0.0).delay(100_000) == 60.0

    def test_retries_count_and_reset(self) -> None:
        retries = Backoff(initial=0.5, maximum=8.0, jitter=0.0).retries()
        assert [retries.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
        retries.reset()
        assert retries.next_delay() == 0.5

    @pytest.mark.parametrize(
        "kwargs", [{"initial": -1.0}, {"factor": 0.5}, {"jitter": 1.5}, {"maximum": -2.0}]
    )
    def test_a_nonsense_policy_is_refused(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="backoff needs"):
            Backoff(**kwargs)


class TestOneBackoff:
    """No retry loop of the house doubles its own delay: they all use gateway.backoff."""

    def test_no_hand_written_doubling(self) -> None:
        pattern = re.compile(r"min\([^)]*\*\s*2\b|\*\s*2(?:\.0)?\s*\*\*|random\.uniform")
        found = [
            f"{path.relative_to(ROOT)}:{number}"
            for package in ("gateway", "adapters")
            for path in sorted((ROOT / package).rglob("*.py"))
            if path.name != "backoff.py"
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line) and "read_size" not in line
        ]
        assert found == []
