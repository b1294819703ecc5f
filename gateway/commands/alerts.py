"""``borderlink alerts [--active] [--json]``: the daemon's alerts as a table in the terminal.

Asks a running gateway's HTTP API (``--url``, default http://127.0.0.1:8080) for the alerts in
force (``--active``, most urgent first) or the most recently received, and prints one line
each: priority, state, severity, event, expiry (UTC), source and headline, cut to the
terminal's width (whole lines into a pipe). ``--json`` prints the API's answer as it came:
``{"alerts": [...], "count": N}``, each alert as ``GET /api/v1/alerts`` gives it (see
``borderlink help http-api``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from gateway.commands import Subparsers, add_command, described

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "the running gateway's alerts as a table (or --json)"


EXIT_CODES = {
    0: "printed (also when there is no alert)",
    2: "the gateway could not be reached or refused the request (its message is shown)",
}

COLUMNS = (
    ("PRI", "priority", 3),
    ("STATE", "status", 10),
    ("SEVERITY", "severity", 8),
    ("EVENT", "event", 18),
    ("EXPIRES UTC", "expires", 11),
    ("SOURCE", "source", 10),
)


def get_json(url: str, path: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """``GET url + path`` as JSON; ``OSError`` (unreachable) / ``ValueError`` (refused, or
    not a URL) say what went wrong and where."""
    target = f"{url.rstrip('/')}{path}"
    if not target.startswith(("http://", "https://")):
        raise ValueError(f"{url!r}: give an http:// or https:// URL")
    try:
        with urllib.request.urlopen(target, timeout=timeout) as answer:  # noqa: S310 - checked
            body: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message") or exc.reason
        except ValueError:
            message = exc.reason
        raise ValueError(f"{target}: {exc.code} {message}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach {target}: {exc.reason}") from None
    return body


def fetch(url: str, *, active: bool, limit: int, timeout: float = 10.0) -> dict[str, Any]:
    """The API's list of alerts (the active ones, or the most recent)."""
    query = urlencode({"limit": limit, **({"active": 1} if active else {})})
    return get_json(url, f"/api/v1/alerts?{query}", timeout=timeout)


def _cell(value: Any, key: str = "") -> str:
    if value is None:
        return "-"
    if key == "expires":
        try:
            return datetime.fromisoformat(str(value)).astimezone(UTC).strftime("%m-%d %H:%M")
        except ValueError:
            return str(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return " ".join(str(value).split())


def table(alerts: list[dict[str, Any]], width: int) -> str:
    """One header line and one line per alert; the headline takes what width is left
    (``width`` 0: lines are not cut)."""
    head = [name.ljust(size) for name, _, size in COLUMNS]
    lines = [" ".join([*head, "HEADLINE"])]
    for alert in alerts:
        cells = [_cell(alert.get(key), key)[:size].ljust(size) for _, key, size in COLUMNS]
        lines.append(" ".join([*cells, _cell(alert.get("headline"))]))
    if width <= 0:
        return "\n".join(lines)
    cut = max(width, 60)
    return "\n".join(line if len(line) <= cut else line[: cut - 1] + "…" for line in lines)


def handle(args: argparse.Namespace) -> int:
    try:
        body = fetch(args.url, active=args.active, limit=args.limit, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        print(f"borderlink alerts: {exc}", file=sys.stderr)  # noqa: T201 - the command's message
        return 2
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))  # noqa: T201 - the output
        return 0
    alerts = list(body.get("alerts", []))
    if not alerts:
        print("no active alerts" if args.active else "no alerts")  # noqa: T201 - the output
        return 0
    # Cut to a terminal's width; a pipe gets whole lines.
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 0
    print(table(alerts, width))  # noqa: T201 - the output
    return 0


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000")
    return value


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "alerts",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's HTTP API")
    parser.add_argument("--active", action="store_true", help="only the alerts in force")
    parser.add_argument("--limit", type=_limit, default=100, help="1 to 1000 (100)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--json", action="store_true", help="the API's answer as JSON")
    parser.set_defaults(handler=handle)
