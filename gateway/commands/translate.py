"""``borderlink translate FILE --to FORMAT``: run a translation from the command line.

FILE is a CAP document, an EDXL-DE envelope carrying CAP (each alert is translated), or for
``--to cap`` a SAME header line; ``-`` reads stdin. The output goes to stdout: a CAP or
EDXL document, a SAME header, or radio text parts one per line.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import structlog

from cap_schemas.edxl import looks_like_edxl, unwrap_alerts
from cap_schemas.errors import CapParseError
from cap_schemas.model import Alert
from cap_schemas.parse import parse_alert
from cap_schemas.same import SameHeader
from cap_schemas.same_cap import same_to_alert
from cap_schemas.serialize import to_xml
from gateway.commands import Subparsers, add_command, described
from gateway.commands.validate import InputError, read_input
from gateway.errors import ConfigError, TranslationError
from gateway.metrics import INPUT_REJECTED
from gateway.translate.registry import RENDERERS
from gateway.translate.text import RADIO_PROFILES

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "translate an alert to IPAWS, CAP-CP, SAME, radio text, EDXL-DE or incident form"


log = structlog.get_logger(__name__)

TARGETS = ("ipaws", "cap-cp", "same", "text", "edxl", "incident", "incident-text", "cap")
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREADABLE = 2
EXIT_CODES = {
    EXIT_OK: "translated",
    EXIT_REFUSED: "an alert cannot be expressed in the target format (the reason is printed; "
    "the others are translated)",
    EXIT_UNREADABLE: "the input could not be read or was refused, or an option has a value "
    "the translation does not take (it is named)",
}


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "translate",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("file", help="CAP or EDXL-DE file (a SAME header for --to cap); - = stdin")
    parser.add_argument("--to", required=True, choices=TARGETS, help="target format")
    parser.add_argument("--lang", choices=("en", "fr", "both"), default="en")
    parser.add_argument("--radio", choices=sorted(RADIO_PROFILES), default="generic")
    parser.add_argument("--budget", type=int, help="characters per radio part")
    parser.add_argument("--station", default="BORDERLK", help="SAME station id (8 chars max)")
    parser.add_argument("--sender", help="sender of translated alerts")
    parser.add_argument("--identifier-prefix", help="identifier namespace of translated alerts")
    parser.add_argument(
        "--timezone", help="IANA zone of IPAWS times, or auto: the area's (the default)"
    )
    parser.add_argument("--blockchannel", action="append", default=[], help="IPAWS BLOCKCHANNEL")
    parser.add_argument("--crosswalk", help="crosswalk CSV (us_same,sgc), 'default' or 'none'")
    parser.add_argument("--fallback-sgc", help="SGC code for US areas the crosswalk misses")
    parser.add_argument("--edxl-version", choices=("1.0", "2.0"), default="2.0")
    parser.add_argument(
        "--country",
        choices=("auto", "US", "CA"),
        default="auto",
        help="where a SAME header is aired (location codes of that country)",
    )
    parser.add_argument(
        "--widen",
        choices=("none", "province"),
        help="let a derived SAME/IPAWS location code cover a whole province or state for a"
        " smaller area (refused by default)",
    )
    parser.add_argument(
        "--over-31",
        choices=("split", "first"),
        help="a SAME alert naming more than 31 places: several headers (split, the default)"
        " or the first 31 only",
    )
    parser.add_argument(
        "--now", help="the time to judge expiry by (ISO 8601), e.g. to replay an old alert"
    )
    parser.set_defaults(handler=run)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "lang": args.lang,
        "radio": args.radio,
        "station": args.station,
        "country": args.country,
    }
    for key in (
        "sender",
        "identifier_prefix",
        "timezone",
        "crosswalk",
        "fallback_sgc",
        "budget",
        "widen",
        "over_31",
    ):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    if args.blockchannel:
        options["blockchannel"] = list(args.blockchannel)
    options["version"] = args.edxl_version
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            msg = f"--now {args.now!r} is not an ISO 8601 time"
            raise ConfigError(msg) from None
        options["now"] = now if now.tzinfo else now.replace(tzinfo=UTC)
    return options


def _alerts(data: bytes) -> list[Alert]:
    try:
        if looks_like_edxl(data):
            found = unwrap_alerts(data)
            if not found:
                INPUT_REJECTED.inc(component="cli", reason="no_alert")
                msg = "the EDXL-DE envelope carries no CAP alert: nothing to translate"
                raise InputError(msg, reason="no_alert")
            return found
        return [parse_alert(data)]
    except CapParseError as exc:
        INPUT_REJECTED.inc(component="cli", reason=exc.reason)
        msg = f"not readable CAP or EDXL-DE: {exc}"
        raise InputError(msg, reason=exc.reason) from None


def _write(parts: tuple[bytes, ...], content_type: str) -> None:
    out = sys.stdout.buffer
    for part in parts:
        out.write(part)
        if not part.endswith(b"\n"):
            out.write(b"\n")
    out.flush()
    log.debug("translation_written", parts=len(parts), content_type=content_type)


def run(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        data = read_input(args.file)
        if args.to == "cap":
            try:
                text = data.decode("ascii").strip().removeprefix("EAS: ")
                header = SameHeader.parse(text, now=options.get("now"))
            except (UnicodeDecodeError, CapParseError) as exc:
                INPUT_REJECTED.inc(component="cli", reason="same")
                sys.stderr.write(f"{args.file}: not a SAME header: {exc}\n")
                return EXIT_UNREADABLE
            _write(
                (
                    to_xml(
                        same_to_alert(header, country="CA" if args.country == "CA" else "US"),
                        pretty=True,
                    ),
                ),
                "cap",
            )
            return EXIT_OK
        alerts = _alerts(data)
    except InputError as exc:
        sys.stderr.write(f"{args.file}: {exc}\n")
        return EXIT_UNREADABLE
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_UNREADABLE
    renderer = RENDERERS[args.to]
    status = EXIT_OK
    for alert in alerts:
        try:
            rendered = renderer(alert, options)
        except (TranslationError, ConfigError) as exc:
            sys.stderr.write(f"{args.file}: {alert.key}: {exc}\n")
            if any(isinstance(e, ConfigError) for e in (exc, exc.__cause__)):
                return EXIT_UNREADABLE  # an option's value: no other alert would fare better
            status = EXIT_REFUSED
            continue
        _write(rendered.parts, rendered.content_type)
    return status
