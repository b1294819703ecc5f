"""One backoff for every retry loop: capped exponential growth with jitter.

After the ``n``-th consecutive failure (1-based) a loop waits
``min(maximum, initial * factor**(n-1))`` seconds times a random factor in ``[1 - jitter, 1]``.
Jitter only ever shortens the wait, so ``maximum`` is a true ceiling; it spreads the
reconnections of many instances (or many sinks) that lost the same peer at the same moment.

Who uses it, and with what jitter:

* the supervisor restarting a component, a feed stream reconnecting (NAAD), a link's source
  listener: ``jitter = 0.5`` (the default);
* a sink's delivery retries: ``0.25``; a feed's poll rounds after failures: ``0.1`` (they
  never go below the poll interval anyway);
* a local process restarted (an audio input), an APRS message resent until acknowledged:
  ``0`` (nothing to spread: one process, one addressee that expects the protocol's timing).

A loop that keeps its own count of failures uses :meth:`Backoff.delay`; one that only needs
"the next wait" and "that went well" holds a :class:`Retries`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff", "Retries"]

# 2.0 ** 64 times any sane initial delay is far beyond every maximum; a larger exponent would
# only risk an OverflowError after a peer that stayed down for weeks.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter (see the module docstring)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or self.factor < 1 or not 0 <= self.jitter <= 1:
            msg = (
                "backoff needs initial >= 0, maximum >= 0, factor >= 1 and jitter in 0..1, got "
                f"initial={self.initial}, maximum={self.maximum}, factor={self.factor}, "
                f"jitter={self.jitter}"
            )
            raise ValueError(msg)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        exponent = min(max(0, failures - 1), _MAX_EXPONENT)
        base = min(self.maximum, self.initial * self.factor**exponent)
        if not self.jitter:
            return base
        return base * (1.0 - self.jitter * self.rng.random())

    def retries(self) -> Retries:
        """A fresh count of consecutive failures under this policy."""
        return Retries(self)


class Retries:
    """One loop's consecutive failures: :meth:`next_delay` after a failure, :meth:`reset`
    after a success."""

    __slots__ = ("failures", "policy")

    def __init__(self, policy: Backoff) -> None:
        self.policy = policy
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure and return the wait before the next try."""
        self.failures += 1
        return self.policy.delay(self.failures)

    def reset(self) -> None:
        self.failures = 0
