"""``borderlink watch [--json]``: a live view of what the gateway admits and delivers.

Polls a running gateway's HTTP API (``--url``, every ``--interval`` seconds) and prints one
line per event as it happens: an alert admitted (with its decision: new, update, cancel ...),
an alert whose state changed (cancelled, superseded, expired), and each delivery that reached
a new state (delivered, held, failed ...) with its sink and attempts. Ctrl-C ends it.

``--json`` prints each event as one JSON object a line, with ``time`` (UTC, ISO 8601),
``kind`` and ``key`` (the alert's sender,identifier,sent) and, by kind: ``admitted``:
``decision``, ``status``, ``severity``, ``event``, ``headline``; ``alert`` (its state
changed): ``from``, ``to``; ``delivery``: ``sink``, ``state``, ``attempts``, ``reason``
(null unless the gateway gave one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from gateway.commands import Subparsers, add_command, described
from gateway.commands.alerts import fetch, get_json

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "a live view of the gateway's admissions and deliveries (or --json lines)"


EXIT_CODES = {
    0: "ended by the user (Ctrl-C), or by the reader of its output (| head)",
    2: "the gateway could not be reached at the start (its message is shown)",
}

# Delivery states after which nothing more happens to an entry: the ledger's TERMINAL_STATES
# by name (a test holds them equal), without loading the ledger into a light command.
FINAL = frozenset({"delivered", "superseded", "expired", "failed"})


class Watcher:
    """What was seen so far, and the events that say what changed since."""

    def __init__(self, get: Callable[[str], dict[str, Any]]) -> None:
        self._get = get
        self.status: dict[str, str] = {}
        self.deliveries: dict[str, dict[str, str]] = {}

    def poll(self, limit: int) -> Iterator[dict[str, Any]]:
        """The events since the last poll, oldest first, as the objects ``--json`` prints
        (without their ``time``)."""
        listed = self._get(f"/api/v1/alerts?limit={limit}").get("alerts", [])
        for alert in reversed(listed):  # oldest first, as they happened
            key = str(alert.get("key"))
            status = str(alert.get("status"))
            before = self.status.get(key)
            if before is None:
                yield {
                    "kind": "admitted",
                    "key": key,
                    "decision": alert.get("decision"),
                    "status": status,
                    "severity": alert.get("severity"),
                    "event": alert.get("event"),
                    "headline": alert.get("headline"),
                }
            elif before != status:
                yield {"kind": "alert", "key": key, "from": before, "to": status}
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
                yield {
                    "kind": "delivery",
                    "key": key,
                    "sink": sink,
                    "state": state,
                    "attempts": entry.get("attempts", 0),
                    "reason": entry.get("reason") or None,
                }


def line(event: dict[str, Any]) -> str:
    """One event as the terminal shows it (after the time)."""
    key = event["key"]
    if event["kind"] == "admitted":
        return (
            f"admitted   {event['decision'] or '-':<9} {event['severity'] or '-':<8}"
            f" {event['event'] or '-'}: {event['headline'] or '-'}  [{key}]"
        )
    if event["kind"] == "alert":
        return f"alert      {event['from']} -> {event['to']}  [{key}]"
    reason = f" ({event['reason']})" if event["reason"] else ""
    return (
        f"delivery   {event['state']:<9} {event['sink']}, attempts {event['attempts']}"
        f"{reason}  [{key}]"
    )


def _show(event: dict[str, Any], *, as_json: bool) -> None:
    now = datetime.now(UTC)
    if as_json:
        stamped = {"time": now.isoformat(timespec="seconds"), **event}
        print(json.dumps(stamped, ensure_ascii=False), flush=True)  # noqa: T201 - the output
    else:
        print(f"{now:%H:%M:%S} {line(event)}", flush=True)  # noqa: T201 - the output


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
                events = list(watcher.poll(args.limit))
            except (OSError, ValueError) as exc:
                print(f"borderlink watch: {exc}; trying again", file=sys.stderr, flush=True)  # noqa: T201
                events = []
            for event in events:
                _show(event, as_json=args.json)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the reader stopped (`| head`): done, as it asked
        # Nothing more can be written; point stdout at /dev/null so the exit's flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "watch",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's HTTP API")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls (1)")
    parser.add_argument("--limit", type=int, default=50, help="recent alerts followed (50)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.set_defaults(handler=handle)
