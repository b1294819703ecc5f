"""The gateway's error tree.

Every error borderlink raises outside the CAP library derives from :class:`GatewayError`,
mixed with the standard exception it resembles so callers may catch either::

    GatewayError (Exception)
    ├── ConfigError (ValueError)          the configuration names a bad file, key or value
    ├── AdapterError                      an external system misbehaved (foreign error wrapped once)
    │   ├── AdapterTimeoutError (TimeoutError)
    │   ├── AdapterConnectionError (ConnectionError)
    │   └── FrameError (ValueError)       one frame on a wire could not be decoded (the decoder
    │                                     resyncs; the adapter keeps running)
    ├── DeliveryError                     a sink refused or could not take a delivery
    └── TranslationError (ValueError)     an alert cannot be expressed in the target format
"""

from __future__ import annotations

from collections import Counter


class GatewayError(Exception):
    """Root of the gateway's errors."""


class ConfigError(GatewayError, ValueError):
    """The configuration is wrong; the message names the file, the key path and what is allowed.

    Raised with :meth:`at`, it keeps those parts apart too (``file``, ``place``: the key path,
    ``variable``: the ``BORDERLINK_*`` variable that set the value, ``detail``: what is wrong),
    so a report for scripts (``check-config --json``) never has to take the message apart.
    Raised with a message alone (an adapter checking its options), ``detail`` is the message.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        place: str | None = None,
        variable: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.place = place
        self.variable = variable
        self.detail = message if detail is None else detail

    @classmethod
    def at(
        cls, file: object, place: str | None, detail: str, *, variable: str | None = None
    ) -> ConfigError:
        """``detail`` at key path ``place`` (None: the file as a whole) of ``file``, worded as
        every configuration error is; ``variable`` when the environment set the value."""
        if variable is not None:
            message = f"environment {variable} ({place} of {file}): {detail}"
        elif place is None:
            message = f"{file}: {detail}"
        else:
            message = f"{file}: {place}: {detail}"
        return cls(message, file=str(file), place=place, variable=variable, detail=detail)


class AdapterError(GatewayError):
    """An adapter or the external system behind it failed."""


class AdapterTimeoutError(AdapterError, TimeoutError):
    """An external system did not answer in time."""


class AdapterConnectionError(AdapterError, ConnectionError):
    """A connection to an external system failed or was lost."""


class FrameError(AdapterError, ValueError):
    """One frame on a wire could not be decoded; the stream decoder resyncs after it."""


class DeliveryError(GatewayError):
    """A sink could not take a delivery; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message)


class TranslationError(GatewayError, ValueError):
    """An alert cannot be expressed in the target format; the message says why."""


class LocationWideningError(TranslationError):
    """A translation would address a much larger area than the alert (a whole province for a
    municipality, a whole state for a county); the message names each code and its origin."""


class Rejections:
    """Input a sans-IO decoder refused, by ``(component, reason)``, until its owner counts it.

    A codec never touches the metrics: it adds here, and the adapter that runs it passes the
    tally to :func:`gateway.metrics.count_rejections` (into
    ``borderlink_input_rejected_total``) after each ``feed``. ``total`` keeps the count of the
    decoder's life, for tests and tools that run a codec alone.
    """

    __slots__ = ("_pending", "total")

    def __init__(self) -> None:
        self._pending: Counter[tuple[str, str]] = Counter()
        self.total: Counter[tuple[str, str]] = Counter()

    def add(self, component: str, reason: str) -> None:
        self._pending[component, reason] += 1
        self.total[component, reason] += 1

    def drain(self) -> list[tuple[str, str, int]]:
        """What was added since the last drain, as ``(component, reason, count)``."""
        out = [(c, r, n) for (c, r), n in sorted(self._pending.items())]
        self._pending.clear()
        return out
