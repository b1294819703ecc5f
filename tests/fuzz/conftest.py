"""Hypothesis profiles of the decoder properties: a short one for every run (CI), a long one
for ``make fuzz`` (``BORDERLINK_FUZZ_SECONDS`` per decoder)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_SECONDS = float(os.environ.get("BORDERLINK_FUZZ_SECONDS", "0"))

settings.register_profile(
    "decoders",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=10_000_000,  # bounded by time, see test_decoders
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
