"""A small Prometheus-text metrics registry (counters, gauges, histograms with labels).

Every part of borderlink counts into :data:`REGISTRY`; the HTTP face renders it at
``/metrics``. Kept dependency-free and cheap on the hot path: a metric with labels is a dict
keyed by the label values.
"""

from __future__ import annotations

import bisect
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TypeVar

from gateway.errors import Rejections

LabelValues = tuple[str, ...]

DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Metric(ABC):
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        names = self.label_names
        if len(labels) == len(names):
            try:
                values = tuple(map(labels.__getitem__, names))
            except KeyError:
                pass
            else:
                for value in values:
                    if type(value) is not str:  # strings are the usual case, on every alert
                        return tuple(map(str, values))
                return values
        msg = f"{self.name} takes labels {names}, got {tuple(labels)}"
        raise ValueError(msg)

    def _label_text(self, values: LabelValues, extra: Iterable[tuple[str, str]] = ()) -> str:
        pairs = [*zip(self.label_names, values, strict=True), *extra]
        if not pairs:
            return ""
        return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"

    @abstractmethod
    def render(self) -> list[str]:
        """The metric's sample lines in Prometheus text format."""


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        return [f"{self.name}{self._label_text(k)} {_fmt(v)}" for k, v in self._values.items()]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        return [f"{self.name}{self._label_text(k)} {_fmt(v)}" for k, v in self._values.items()]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
            counts[index] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        return sum(self._counts.get(self._key(labels), ()))

    def render(self) -> list[str]:
        lines: list[str] = []
        for key, counts in self._counts.items():
            running = 0
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                running += n
                lines.append(
                    f"{self.name}_bucket{self._label_text(key, [('le', _fmt(bound))])} {running}"
                )
            lines.append(f"{self.name}_sum{self._label_text(key)} {_fmt(self._sums[key])}")
            lines.append(f"{self.name}_count{self._label_text(key)} {running}")
        return lines


_M = TypeVar("_M", bound=_Metric)


class Registry:
    """Holds metrics by name; asking twice for the same name returns the same metric."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()
        # Labels on every sample: the instance's name when several share one ledger.
        self.constant_labels: dict[str, str] = {}

    def _get(self, cls: type[_M], name: str, help_text: str, labels: Sequence[str]) -> _M:
        with self._lock:
            existing = self._metrics.get(name)
            if existing is None:
                metric = cls(name, help_text, labels)
                self._metrics[name] = metric
                return metric
        if not isinstance(existing, cls) or existing.label_names != tuple(labels):
            msg = f"metric {name} already registered with another type or labels"
            raise ValueError(msg)
        return existing

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        return self._get(Counter, name, help_text, labels)

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        return self._get(Gauge, name, help_text, labels)

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Histogram:
        return self._get(Histogram, name, help_text, labels)

    def render(self) -> str:
        out: list[str] = []
        extra = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(self.constant_labels.items()))
        for metric in sorted(self._metrics.values(), key=lambda m: m.name):
            out.append(f"# HELP {metric.name} {metric.help}")
            out.append(f"# TYPE {metric.name} {metric.kind}")
            lines = metric.render()
            if extra:
                lines = [_with_labels(line, extra) for line in lines]
            out.extend(lines)
        return "\n".join(out) + "\n"


def _with_labels(line: str, extra: str) -> str:
    """A sample line with ``extra`` (``k="v",...``) added to its labels."""
    series, _, value = line.rpartition(" ")
    if series.endswith("}"):
        return f"{series[:-1]},{extra}}} {value}"
    return f"{series}{{{extra}}} {value}"


REGISTRY = Registry()

# Counted by every parser and port that rejects input: what was rejected, where, and why.
INPUT_REJECTED = REGISTRY.counter(
    "borderlink_input_rejected_total",
    "Inputs rejected by a parser or port, by component and reason",
    ("component", "reason"),
)


def count_rejections(rejections: Rejections) -> None:
    """Count what a decoder refused since the last call in :data:`INPUT_REJECTED`."""
    for component, reason, count in rejections.drain():
        INPUT_REJECTED.inc(count, component=component, reason=reason)
