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


class GatewayError(Exception):
    """Root of the gateway's errors."""


class ConfigError(GatewayError, ValueError):
    """The configuration is wrong; the message names the file, the key path and what is allowed."""


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
