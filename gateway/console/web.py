"""The console's pages on the daemon's HTTP port: board, alert detail, holds, sign-in.

Server-rendered HTML (Jinja2, autoescaped) with one small script for live updates: the
board, the holds and the health strip are fragments that the script fetches again when the
event stream (``/events``, the ledger's journal as server-sent events) says something
changed, or every few seconds when the stream is down. Nothing is loaded from elsewhere
(a strict Content-Security-Policy says so to the browser).

Every page needs a signed-in account (:mod:`gateway.console.accounts`); approving and
rejecting need the ``operator`` role and the session's CSRF token, and the ledger records
the account's name with the change.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import hmac
import io
import math
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import structlog
from aiohttp import web

from cap_schemas.errors import CapParseError
from cap_schemas.model import AlertKey
from cap_schemas.same import SameHeader
from cap_schemas.serialize import to_xml
from cap_schemas.signature import sign
from gateway import approvals
from gateway.adapter import Received, load_codec
from gateway.console import compose, views
from gateway.console.app import (
    COMPONENT,
    CONSOLE_KEY,
    LANG_COOKIE,
    Console,
    check_csrf,
    signed_in,
)
from gateway.console.atom import atom_feed
from gateway.console.i18n import LANGUAGES, words
from gateway.console.incident_pages import incident_routes
from gateway.console.incidents import current_incidents
from gateway.console.live import sse_event
from gateway.console.lockout import LoginRefused, login
from gateway.console.mapdata import map_routes
from gateway.console.partners import late_rows
from gateway.console.sessions import COOKIE_NAME, Session
from gateway.console.sounds import sound_wav
from gateway.ledger import ApprovalRefusedError, EntryNotFoundError, EntryStateError
from gateway.metrics import INPUT_REJECTED

log = structlog.get_logger(__name__)

__all__ = ["Console", "console_routes"]

STATIC = Path(__file__).resolve().parent / "static"
LOGIN_COOKIE = "borderlink_login"  # double-submit token of the sign-in form
STATUSES = ("active", "cancelled", "superseded", "expired")
def _safe_next(target: str) -> str:
    """Only a path of this site (never ``//host`` or a scheme) after signing in."""
    target = unquote(target or "/")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# ---------------------------------------------------------------------------------- sign-in


async def login_page(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    token = secrets.token_urlsafe(24)
    response = console.render(
        request,
        "login.html",
        form_token=token,
        error="",
        next=_safe_next(request.query.get("next", "/")),
        name="",
    )
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return response


async def login_post(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    form = await request.post()
    name = str(form.get("name", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    target = _safe_next(str(form.get("next", "/")))
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    form_token = str(form.get("form_token", ""))
    t = words(console.language(request))

    def again(error: str, status: int) -> web.Response:
        token = secrets.token_urlsafe(24)
        response = console.render(
            request,
            "login.html",
            status=status,
            form_token=token,
            error=error,
            next=target,
            name=name,
        )
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login")
        return response

    if not cookie_token or not hmac.compare_digest(cookie_token, form_token):
        INPUT_REJECTED.inc(component=COMPONENT, reason="csrf")
        log.warning("console_login_csrf_refused", remote=request.remote)
        return again(t["login_form_expired"], 403)  # a stale form (another tab), not the password
    remote = request.remote or ""
    accounts = console.accounts.get()
    now = console.now()
    try:
        account = await asyncio.to_thread(
            login, accounts, console.lockout, name, password, remote, now
        )
    except LoginRefused as exc:
        if exc.reason == "locked":
            left = exc.retry_after or 60.0
            return again(t["locked"].format(minutes=max(1, math.ceil(left / 60))), 429)
        return again(t["wrong_login"], 401)
    log.info("console_signed_in", name=account.name, role=account.role, remote=remote)
    response = web.HTTPFound(target)
    response.set_cookie(
        COOKIE_NAME,
        console.signer.issue(account, now),
        **console.signer.cookie_kwargs(secure=request.secure),
    )
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


@signed_in
async def logout(request: web.Request, session: Session) -> web.StreamResponse:
    form = await request.post()
    check_csrf(form, session)
    log.info("console_signed_out", name=session.name)
    response = web.HTTPFound("/login")
    response.del_cookie(COOKIE_NAME, path="/")
    raise response


async def choose_language(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    response = web.HTTPFound(_safe_next(request.query.get("next", "/")))
    if code in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, code, max_age=365 * 86400, samesite="Strict", path="/", httponly=True
        )
    raise response


# ------------------------------------------------------------------------------------ pages


async def _board_values(console: Console, language: str) -> dict[str, Any]:
    rows = await asyncio.to_thread(
        functools.partial(
            views.board_rows, partners=console.daemon.config.partners, language=language
        ),
        console.daemon.ledger, console.now(), console.cache,
    )  # fmt: skip
    incidents = await asyncio.to_thread(current_incidents, console.daemon.ledger, console.now())
    return {"rows": rows, "incidents": incidents, "health": await console.health()}


@signed_in
async def board(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    values = await _board_values(console, console.language(request))
    return console.render(request, "board.html", session=session, **values)


@signed_in
async def on_air(request: web.Request, session: Session) -> web.StreamResponse:
    """The wall display: the most urgent alerts in force, large, nothing else to press."""
    console = request.app[CONSOLE_KEY]
    rows = await asyncio.to_thread(
        functools.partial(views.board_rows, language=console.language(request)),
        console.daemon.ledger, console.now(), console.cache,
    )  # fmt: skip
    # The most severe first and, among equals, the newest: what just came is what to see.
    rows.sort(key=lambda r: (views.severity_rank(r.severity), r.age))
    template = "onair_rows.html" if request.query.get("part") == "rows" else "onair.html"
    return console.render(request, template, session=session, rows=rows[:ON_AIR_ROWS])


ON_AIR_ROWS = 8


@signed_in
async def board_rows(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    values = await _board_values(console, console.language(request))
    return console.render(request, "board_rows.html", session=session, **values)


@signed_in
async def health_strip(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    return console.render(request, "health.html", session=session, health=await console.health())


def _alert_key(request: web.Request) -> AlertKey | None:
    try:
        return AlertKey.from_reference(unquote(request.match_info["key"]))
    except ValueError:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_key")
        return None


@signed_in
async def alert_detail(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    key = _alert_key(request)
    page = None
    if key is not None:
        page = await asyncio.to_thread(
            views.alert_page, console.daemon.ledger, key, console.now(), console.cache,
            console.daemon.config.partners,
        )  # fmt: skip
    if page is None:
        return console.render(
            request, "missing.html", status=404, session=session, health=await console.health()
        )
    template = "alert_live.html" if request.query.get("part") == "live" else "alert.html"
    return await console.page(request, session, template, page=page)


@signed_in
async def holds(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    groups = await asyncio.to_thread(views.hold_groups, console.daemon.ledger)
    template = "holds_list.html" if request.query.get("part") == "list" else "holds.html"
    return await console.page(request, session, template, groups=groups)


@signed_in
async def act_on_holds(request: web.Request, session: Session) -> web.StreamResponse:
    """Approve or reject the chosen held deliveries (of one alert or several) at once."""
    console = request.app[CONSOLE_KEY]
    form = await request.post()
    check_csrf(form, session)
    if not session.can("approve"):
        INPUT_REJECTED.inc(component=COMPONENT, reason="forbidden")
        log.warning("console_action_forbidden", name=session.name, role=session.role)
        raise web.HTTPForbidden(text=f"the role {session.role!r} may not approve or reject")
    back = _safe_next(str(form.get("back", "/holds")))
    action = str(form.get("action", ""))
    comment = " ".join(str(form.get("comment", "")).split())[:500]
    ids: list[int] = []
    for value in form.getall("entry", []):
        try:
            ids.append(int(str(value)))
        except ValueError:
            INPUT_REJECTED.inc(component=COMPONENT, reason="bad_id")
    t = words(console.language(request))
    sep = "&" if "?" in back else "?"
    if not ids:
        raise web.HTTPFound(f"{back}{sep}done={quote(t['nothing_chosen'])}")
    if action == "reject" and not comment:
        raise web.HTTPFound(f"{back}{sep}done={quote(t['comment_needed'])}")
    if action not in ("approve", "reject"):
        raise web.HTTPBadRequest(text="action is approve or reject")
    ledger = console.daemon.ledger
    if action == "approve":
        await _two_person_check(ledger, ids, session.name)
    done = 0
    woken: set[str] = set()
    for entry_id in ids:
        try:
            if action == "approve":
                entry = await asyncio.to_thread(
                    ledger.approve, entry_id, by=session.name, comment=comment
                )
                woken.add(entry.sink)
            else:
                entry = await asyncio.to_thread(ledger.reject, entry_id, comment, by=session.name)
        except ApprovalRefusedError as exc:  # the ledger's own check of the rule
            raise web.HTTPForbidden(text=str(exc)) from None
        except (EntryNotFoundError, EntryStateError) as exc:
            log.info("console_hold_unchanged", entry=entry_id, error=str(exc))
            continue
        done += 1
        log.info(
            "hold_approved" if action == "approve" else "hold_rejected",
            entry=entry_id,
            alert=str(entry.key),
            sink=entry.sink,
            by=session.name,
            comment=comment,
        )
    for sink in woken:
        console.daemon.wake(sink)
    message = t["done_approved" if action == "approve" else "done_rejected"].format(count=done)
    raise web.HTTPFound(f"{back}{sep}done={quote(message)}")


async def _two_person_check(ledger: Any, ids: list[int], name: str) -> None:
    """403 when ``name`` issued one of the chosen alerts held for a second operator."""
    entries = await asyncio.to_thread(lambda: [ledger.entry(i) for i in ids])
    why = approvals.first_refusal((e.reason for e in entries if e is not None), name)
    if why:
        INPUT_REJECTED.inc(component=COMPONENT, reason="two_person")
        log.warning("console_approval_refused", name=name, reason=why)
        raise web.HTTPForbidden(text=why)


@signed_in
async def attention(request: web.Request, session: Session) -> web.StreamResponse:
    """The banner of alerts that ring and nobody has acknowledged yet (a fragment)."""
    console = request.app[CONSOLE_KEY]
    ringing = await asyncio.to_thread(
        views.ringing_rows, console.daemon.ledger, console.now(), console.cache
    )
    late = await asyncio.to_thread(
        late_rows, console.daemon.ledger, console.daemon.config.partners, console.now()
    )
    return console.render(request, "attention.html", session=session, ringing=ringing, late=late)


@signed_in
async def acknowledge(request: web.Request, session: Session) -> web.StreamResponse:
    """A named account acknowledges a ringing alert: the banner goes for everyone."""
    console = request.app[CONSOLE_KEY]
    form = await request.post()
    check_csrf(form, session)
    try:
        key = AlertKey.from_reference(str(form.get("key", "")))
    except ValueError:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_key")
        raise web.HTTPBadRequest(text="no such alert key") from None
    found = await asyncio.to_thread(
        console.daemon.ledger.acknowledge, key, session.name, console.now()
    )
    if not found:
        raise web.HTTPNotFound(text="no such alert")
    raise web.HTTPFound(_safe_next(str(form.get("back", "/"))))


@functools.lru_cache(maxsize=32)
def _same_audio(header: str) -> bytes:
    audio: bytes = load_codec("same-audio")(header)
    return audio


@signed_in
async def same_audio(request: web.Request, session: Session) -> web.StreamResponse:
    """A SAME header's transmission, to listen to on the alert's page (``?header=ZCZC-...``)."""
    header = request.query.get("header", "")
    try:
        SameHeader.parse(header)
    except CapParseError as exc:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_same_header")
        raise web.HTTPBadRequest(text=f"header: {exc}") from None
    body = await asyncio.to_thread(_same_audio, header)
    return web.Response(
        body=body, content_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"}
    )


_STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@functools.lru_cache(maxsize=64)
def _static_file(relative: str) -> tuple[bytes, str] | None:
    """A file of the console's static folder and its type, or None (outside the folder, or
    of a type it does not serve). Read once: the files ship with the package."""
    root = STATIC.resolve()
    path = (root / relative).resolve()
    kind = _STATIC_TYPES.get(path.suffix)
    if kind is None or root not in path.parents or not path.is_file():
        return None
    return path.read_bytes(), kind


async def favicon(_request: web.Request) -> web.StreamResponse:
    """Browsers and tools that ask for ``/favicon.ico`` anyway get the console's icon."""
    raise web.HTTPMovedPermanently("/static/icon.svg")


async def static_file(request: web.Request) -> web.StreamResponse:
    """The console's scripts, styles and images, gzip-compressed when the browser asks
    (Leaflet alone is 144 KiB raw)."""
    found = _static_file(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    body, kind = found
    response = web.Response(
        body=body,
        content_type=kind,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
    if not kind.startswith("image/png"):
        response.enable_compression()
    return response


async def sound(request: web.Request) -> web.StreamResponse:
    try:
        body = sound_wav(request.match_info["name"])
    except KeyError:
        raise web.HTTPNotFound(text="no such sound") from None
    return web.Response(
        body=body, content_type="audio/wav", headers={"Cache-Control": "max-age=86400"}
    )


async def _composed(
    console: Console, session: Session, form: Mapping[str, Any]
) -> tuple[compose.Draft, Any, list[Any], str]:
    """The draft of a form, the alert it makes (None when it cannot make one), its findings
    and the reason it could not be made."""
    draft = compose.Draft.from_form(form)
    try:
        alert = compose.build(
            draft, sender=console.daemon.sender, sender_name=console.title,
            now=console.now(), issued_by=session.name,
        )  # fmt: skip
    except compose.DraftError as exc:
        return draft, None, [], str(exc)
    findings = await asyncio.to_thread(compose.check, alert, draft.profile)
    return draft, alert, findings, ""


@signed_in
async def compose_page(request: web.Request, session: Session) -> web.StreamResponse:
    """The form: a new alert, or an Update / Cancel of one (``?of=KEY&as=Update``)."""
    console = request.app[CONSOLE_KEY]
    profile = request.query.get("profile", "cap-cp")
    draft = compose.Draft(profile=profile if profile in compose.PROFILES else "cap-cp")
    of = request.query.get("of", "")
    if of:
        draft = await asyncio.to_thread(_prefill, console, of, request.query.get("as", "Update"))
    return await console.page(
        request, session, "compose.html", draft=draft, findings=[], problem="", previews=[]
    )


def _prefill(console: Console, of: str, msg_type: str) -> compose.Draft:
    """A draft from an alert we hold: its fields, and ``references`` built to name it."""
    try:
        key = AlertKey.from_reference(unquote(of))
    except ValueError:
        raise web.HTTPBadRequest(text="of: an alert key") from None
    stored = console.daemon.ledger.get(key)
    alert = console.cache.get(stored) if stored is not None else None
    if alert is None:
        raise web.HTTPNotFound(text=f"no alert {key}")
    en = next((i for i in alert.infos if not i.language.lower().startswith("fr")), alert.infos[0])
    fr = next((i for i in alert.infos if i.language.lower().startswith("fr")), None)
    profile = "ipaws" if "IPAWSv1.0" in alert.codes else "cap-cp"
    codes = [g.value for a in en.areas for g in a.geocodes]
    refs = " ".join(str(k) for k in (*alert.references, alert.key))
    return compose.Draft(
        profile=profile,
        status=alert.status.value,
        msg_type=msg_type if msg_type in ("Update", "Cancel") else "Update",
        references=refs,
        event=(en.event_code("SAME") or "") if profile == "ipaws" else en.event,
        category=en.categories[0].value if en.categories else "Safety",
        urgency="Past" if msg_type == "Cancel" else en.urgency.value,
        severity="Minor" if msg_type == "Cancel" else en.severity.value,
        certainty=en.certainty.value,
        headline_en=en.headline or "",
        description_en=en.description or "",
        instruction_en=en.instruction or "",
        headline_fr=(fr.headline or "") if fr else "",
        description_fr=(fr.description or "") if fr else "",
        instruction_fr=(fr.instruction or "") if fr else "",
        area_en=en.areas[0].area_desc if en.areas else "",
        area_fr=fr.areas[0].area_desc if fr and fr.areas else "",
        codes=" ".join(dict.fromkeys(codes)),
        polygon=compose.polygon_text(en),
        circle=compose.circle_text(en),
    )


@signed_in
async def compose_check(request: web.Request, session: Session) -> web.StreamResponse:
    """The findings and previews of the form as it stands (fetched as the operator types)."""
    console = request.app[CONSOLE_KEY]
    form = await request.post()
    check_csrf(form, session)
    draft, alert, findings, problem = await _composed(console, session, form)
    previews = []
    if alert is not None and not compose.errors(findings):
        previews = await asyncio.to_thread(
            compose.previews, alert, draft.profile, sender=console.daemon.sender
        )
    return console.render(
        request, "compose_check.html", session=session, findings=findings, problem=problem,
        previews=previews,
    )  # fmt: skip


@signed_in
async def compose_submit(request: web.Request, session: Session) -> web.StreamResponse:
    """Issue the alert: checked again, signed when the deployment has a key, then admitted
    through the same intake as any input; a failing check keeps the form as it was."""
    console = request.app[CONSOLE_KEY]
    form = await request.post()
    check_csrf(form, session)
    if not session.can("approve"):
        INPUT_REJECTED.inc(component=COMPONENT, reason="forbidden")
        raise web.HTTPForbidden(text=f"the role {session.role!r} may not issue alerts")
    draft, alert, findings, problem = await _composed(console, session, form)
    if alert is None or compose.errors(findings):
        return await console.page(
            request, session, "compose.html", status=400, draft=draft, findings=findings,
            problem=problem or "the alert has errors: fix them and send it again", previews=[],
        )  # fmt: skip
    raw = to_xml(alert)
    config = console.config
    if config.signing_key_file is not None and config.signing_cert_file is not None:
        raw = await asyncio.to_thread(
            sign, raw, key_pem=config.signing_key_file.read_bytes(),
            cert_pem=config.signing_cert_file.read_bytes(),
        )  # fmt: skip
    outcome = await console.daemon.ingest(
        Received(raw=raw, source="console", received_at=console.now(), issued_by=session.name)
    )
    log.info("console_alert_issued", alert=str(alert.key), by=session.name,
             accepted=outcome.accepted, signed=config.signing_key_file is not None)  # fmt: skip
    if not outcome.accepted:
        return await console.page(
            request, session, "compose.html", status=400, draft=draft, findings=findings,
            problem=f"the gateway refused it: {outcome.message or outcome.rejected}", previews=[],
        )  # fmt: skip
    raise web.HTTPFound(views.alert_href(alert.key))


def _when(text: str, name: str) -> datetime | None:
    """A date (``2026-12-04``, the day's start in UTC) or a time with its zone, or None."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_date")
        raise web.HTTPBadRequest(text=f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _search_of(request: web.Request) -> views.Search:
    query = request.query
    status = query.get("status", "")
    if status and status not in STATUSES:
        raise web.HTTPBadRequest(text=f"status: one of {', '.join(STATUSES)}")
    country = query.get("country", "")
    if country not in ("", "ca", "us"):
        raise web.HTTPBadRequest(text="country: ca, us or empty")
    until = _when(query.get("to", ""), "to")
    if until is not None and len(query.get("to", "")) == 10:
        until += timedelta(days=1)  # a date "to" includes that day
    return views.Search(
        text=query.get("q", "").strip()[:200],
        country=country,
        since=_when(query.get("from", ""), "from"),
        until=until,
        status=status or None,
        before=_when(query.get("before", ""), "before"),
    )


@signed_in
async def history(request: web.Request, session: Session) -> web.StreamResponse:
    """Past and present alerts by identifier, event, area, country and dates, with paging."""
    console = request.app[CONSOLE_KEY]
    query = _search_of(request)
    found, more = await asyncio.to_thread(views.search, console.daemon.ledger, query, console.cache)
    params = {k: v for k, v in request.query.items() if k != "before" and v}
    older = None
    if more is not None:
        older = "/history?" + urlencode({**params, "before": more.isoformat()})
    export = urlencode(params)
    return await console.page(
        request,
        session,
        "history.html",
        found=found,
        older=older,
        query=query,
        params=params,
        export=export,
        statuses=STATUSES,
    )


EXPORT_LIMIT = 10_000


@signed_in
async def history_csv(request: web.Request, session: Session) -> web.StreamResponse:
    """The search as CSV (up to 10,000 alerts), for a spreadsheet or a report."""
    console = request.app[CONSOLE_KEY]
    query = _search_of(request)
    found, _more = await asyncio.to_thread(
        views.search, console.daemon.ledger, query, console.cache,
        limit=EXPORT_LIMIT, scan=EXPORT_LIMIT * 5,
    )  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["received", "sender", "identifier", "sent", "country", "status", "msg_type",
         "event", "severity", "urgency", "headline", "areas", "expires", "source"]
    )  # fmt: skip
    for f in found:
        a = f.stored
        writer.writerow(
            [a.received_at.isoformat(), a.key.sender, a.key.identifier, a.key.sent, f.country,
             a.status.value, a.msg_type, a.event, a.severity, a.urgency, a.headline,
             "; ".join(a.areas), a.expires.isoformat() if a.expires else "", a.source]
        )  # fmt: skip
    log.info("console_export", kind="csv", name=session.name, rows=len(found))
    return web.Response(
        text=out.getvalue(), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="borderlink-alerts.csv"'},
    )  # fmt: skip


@signed_in
async def history_atom(request: web.Request, session: Session) -> web.StreamResponse:
    """The search as an Atom feed with each CAP alert inside its entry (up to 500)."""
    console = request.app[CONSOLE_KEY]
    query = _search_of(request)
    found, _more = await asyncio.to_thread(
        views.search, console.daemon.ledger, query, console.cache, limit=500
    )
    body = atom_feed(
        found, title=f"{console.title}: alerts", url=str(request.url), now=console.now()
    )
    log.info("console_export", kind="atom", name=session.name, rows=len(found))
    return web.Response(
        body=body, content_type="application/atom+xml", charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="borderlink-alerts.atom"'},
    )  # fmt: skip


@signed_in
async def events(request: web.Request, session: Session) -> web.StreamResponse:
    """The journal as server-sent events: ``change`` per line, ``reload`` when too slow."""
    console = request.app[CONSOLE_KEY]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    try:
        await _follow(response, console, session)
    except ConnectionResetError:  # the browser left the page: nothing to answer
        log.debug("console_events_closed", name=session.name)
    return response


async def _follow(response: web.StreamResponse, console: Console, session: Session) -> None:
    async with console.feed.subscribe() as queue:
        while True:
            try:
                line = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                await response.write(b": still here\n\n")
                continue
            if line is None:
                await response.write(sse_event("reload", {}))
                continue
            await response.write(
                sse_event(
                    "change",
                    {"key": str(line.key), "event": line.event, "sink": line.sink or ""},
                )
            )
            if session.expires <= console.now():
                return


# ----------------------------------------------------------------------------------- wiring


def console_routes() -> list[web.AbstractRouteDef]:
    return [
        *map_routes(),
        *incident_routes(),
        web.get("/", board),
        web.get("/board/rows", board_rows),
        web.get("/onair", on_air),
        web.get("/health", health_strip),
        web.get("/alerts/{key}", alert_detail),
        web.get("/holds", holds),
        web.get("/history", history),
        web.get("/compose", compose_page),
        web.post("/compose", compose_submit),
        web.post("/compose/check", compose_check),
        web.get("/history.csv", history_csv),
        web.get("/history.atom", history_atom),
        web.post("/holds", act_on_holds),
        web.get("/events", events),
        web.get("/attention", attention),
        web.post("/attention", acknowledge),
        web.get("/sounds/{name}.wav", sound),
        web.get("/same.wav", same_audio),
        web.get("/login", login_page),
        web.post("/login", login_post),
        web.post("/logout", logout),
        web.get("/lang/{code}", choose_language),
        web.get("/static/{path:.+}", static_file),
        web.get("/favicon.ico", favicon),
    ]


def install(app: web.Application, daemon: Any) -> Console:
    """Add the console to ``app`` (its routes, and the live feed started with the app)."""
    console = Console(daemon, daemon.config.console)
    app[CONSOLE_KEY] = console
    app.add_routes(console_routes())

    async def feed(_app: web.Application) -> Any:
        await console.feed.start()
        yield
        await console.feed.stop()

    app.cleanup_ctx.append(feed)
    return console
