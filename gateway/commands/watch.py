"""``borderlink watch``: a live view of what the gateway admits and delivers.

Polls a running gateway's HTTP API (``--url``, every ``--interval`` seconds) and prints one
line per event as it happens: an alert admitted (with its decision: new, update, cancel ...),
an alert whose state changed (cancelled, superseded, expired), and each delivery that reached
a new state (delivered, held, failed ...) with its sink and attempts. Ctrl-C ends it. Exit
codes: 0 ended by the user, 2 the gateway could not be reached at the start.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from gateway.commands import Subparsers
from gateway.commands.alerts import fetch, get_json

# Delivery states after which nothing more happens to an entry: the ledger's TERMINAL_STATES
# by name (a test holds them equal), without loading the ledger into a light command.
FINAL = frozenset({"delivered", "superseded", "expired", "failed"})


class Watcher:
    """What was seen so far, and the lines that say what changed since."""

    def __init__(self, get: Callable[[str], dict[str, Any]]) -> None:
        self._get = get
        self.status: dict[str, str] = {}
        self.deliveries: dict[str, dict[str, str]] = {}

    def poll(self, limit: int) -> Iterator[str]:
        listed = self._get(f"/api/v1/alerts?limit={limit}").get("alerts", [])
        for alert in reversed(listed):  # oldest first, as they happened
            key = str(alert.get("key"))
            status = str(alert.get("status"))
            before = self.status.get(key)
            if before is None:
                yield (
                    f"admitted   {alert.get('decision', '-'):<9} {alert.get('severity') or '-':<8}"
                    f" {alert.get('event') or '-'}: {alert.get('headline') or '-'}  [{key}]"
                )
            elif before != status:
                yield f"alert      {before} -> {status}  [{key}]"
            self.status[key] = status
            seen = self.deliveries.setdefault(key, {})
            if seen and all(state in FINAL for state in seen.values()):
                continue
            detail = self._get(f"/api/v1/alerts/{quote(key, safe='')}")
            for entry in detail.get("deliveries", []):
                sink, state = str(entry.get("sink")), str(entry.get("state"))
                if seen.get(sink) == state:
                    continue
                seen[sink] = state
                reason = f" ({entry['reason']})" if entry.get("reason") else ""
                yield (
                    f"delivery   {state:<9} {sink}, attempts {entry.get('attempts', 0)}"
                    f"{reason}  [{key}]"
                )


def handle(args: argparse.Namespace) -> int:
    def get(path: str) -> dict[str, Any]:
        return get_json(args.url, path, timeout=args.timeout)

    try:
        fetch(args.url, active=True, limit=1, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        print(f"borderlink watch: {exc}", file=sys.stderr)  # noqa: T201 - the command's message
        return 2
    print(f"watching {args.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)  # noqa: T201
    watcher = Watcher(get)
    try:
        while True:
            try:
                for line in watcher.poll(args.limit):
                    stamp = datetime.now(UTC).strftime("%H:%M:%S")
                    print(f"{stamp} {line}", flush=True)  # noqa: T201 - the output
            except (OSError, ValueError) as exc:
                print(f"borderlink watch: {exc}; trying again", file=sys.stderr, flush=True)  # noqa: T201
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def register(subparsers: Subparsers) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "watch",
        help="a live view of the gateway's admissions and deliveries",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's HTTP API")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls (1)")
    parser.add_argument("--limit", type=int, default=50, help="recent alerts followed (50)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (10)")
    parser.set_defaults(handler=handle)
