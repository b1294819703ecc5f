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
import hmac
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
import structlog
from aiohttp import web

from cap_schemas.model import AlertKey
from gateway.config import ConsoleConfig
from gateway.console import views
from gateway.console.accounts import Account, account_for_token, read_accounts
from gateway.console.i18n import LANGUAGES, words
from gateway.console.live import JournalFeed, sse_event
from gateway.console.lockout import Lockout, LoginRefused, login
from gateway.console.sessions import COOKIE_NAME, Session, SessionSigner, load_or_create_secret
from gateway.console.sounds import sound_wav
from gateway.errors import ConfigError
from gateway.ledger import EntryNotFoundError, EntryStateError
from gateway.metrics import INPUT_REJECTED

log = structlog.get_logger(__name__)

__all__ = ["Console", "console_routes"]

STATIC = Path(__file__).resolve().parent / "static"
LANG_COOKIE = "borderlink_lang"
LOGIN_COOKIE = "borderlink_login"  # double-submit token of the sign-in form
COMPONENT = "console"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self';"
        " base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Accounts:
    """The users file, read again when it changes (``borderlink user add`` needs no restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._accounts: dict[str, Account] = {}

    def get(self) -> dict[str, Account]:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            try:
                self._accounts = read_accounts(self.path)
            except ConfigError as exc:
                # Keep the last good accounts: a half-edited file must not lock everyone out.
                log.exception("console_users_file_refused", error=str(exc))
                return self._accounts
            self._stamp = stamp
        return self._accounts


class Console:
    """The console of one daemon: accounts, sessions, templates and the live feed."""

    def __init__(self, daemon: Any, config: ConsoleConfig) -> None:
        self.daemon = daemon
        self.config = config
        self.accounts = _Accounts(config.users_file)
        self.signer = SessionSigner(
            load_or_create_secret(config.secret_file), timedelta(hours=config.session_hours)
        )
        self.lockout = Lockout(
            failures=config.lockout_failures,
            window=timedelta(minutes=config.lockout_minutes),
            lock_for=timedelta(minutes=config.lockout_minutes),
        )
        self.cache = views.ParsedCache()
        self.feed = JournalFeed(lambda: daemon.ledger, daemon.clock.now)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("gateway.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals["duration"] = views.duration
        self.env.filters["quote"] = lambda text: quote(str(text), safe="")

    @property
    def title(self) -> str:
        return self.config.title or str(self.daemon.config.gateway.name)

    def now(self) -> datetime:
        now: datetime = self.daemon.clock.now()
        return now

    # ------------------------------------------------------------------ requests

    def session(self, request: web.Request) -> Session | None:
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie:
            return None
        return self.signer.check(cookie, self.now(), self.accounts.get())

    def language(self, request: web.Request) -> str:
        chosen = request.cookies.get(LANG_COOKIE, "")
        return chosen if chosen in LANGUAGES else self.config.language

    def render(
        self,
        request: web.Request,
        template: str,
        *,
        status: int = 200,
        session: Session | None = None,
        **values: Any,
    ) -> web.Response:
        language = self.language(request)
        values.setdefault("flash", "")
        values.setdefault("health", [])
        page = self.env.get_template(template).render(
            t=words(language),
            lang=language,
            title=self.title,
            session=session,
            path=request.path_qs,
            **values,
        )
        response = web.Response(
            text=page,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )
        response.enable_compression()  # a board of a thousand alerts is ~1.5 MB of HTML
        return response

    async def page(
        self, request: web.Request, session: Session, template: str, **values: Any
    ) -> web.Response:
        """A whole page: with the health strip and the message of the last action."""
        return self.render(
            request,
            template,
            session=session,
            health=await self.health(),
            flash=request.query.get("done", ""),
            **values,
        )

    async def health(self) -> list[views.HealthLine]:
        _ok, sources = self.daemon.health()
        outbox = await asyncio.to_thread(self.daemon.ledger.outbox_counts)
        return views.health_lines(
            sources, self.daemon.sink_health(), outbox, self.now(), self.config.stale_seconds
        )


CONSOLE_KEY: web.AppKey[Console] = web.AppKey("console", Console)


def identify(request: web.Request) -> Session | Account | None:
    """Who a request to the JSON API is, as a console account: a personal token
    (``Authorization: Bearer blk_...``), or the console's session cookie with its CSRF token
    in ``X-CSRF-Token`` (the page's own script). None when neither holds."""
    console = request.app.get(CONSOLE_KEY)
    if console is None:
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return account_for_token(console.accounts.get(), token.strip())
    session = console.session(request)
    if session is not None and session.csrf_ok(request.headers.get("X-CSRF-Token")):
        return session
    return None


def _signed_in(handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> Handler:
    """A page for signed-in accounts; others go to the sign-in page (fragments get 401)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        console = request.app[CONSOLE_KEY]
        session = console.session(request)
        if session is None:
            if request.headers.get("X-Requested-With") == "fetch" or request.path == "/events":
                return web.Response(status=401, text="sign in again", headers=SECURITY_HEADERS)
            raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
        return await handler(request, session)

    return wrapped


def _check_csrf(form: Mapping[str, Any], session: Session) -> None:
    """A form that changes something must carry the session's CSRF token."""
    if not session.csrf_ok(str(form.get("csrf", ""))):
        INPUT_REJECTED.inc(component=COMPONENT, reason="csrf")
        raise web.HTTPForbidden(text="the form's token is stale: reload the page")


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
        return again(t["wrong_login"], 403)
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


@_signed_in
async def logout(request: web.Request, session: Session) -> web.StreamResponse:
    form = await request.post()
    _check_csrf(form, session)
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


async def _board_values(console: Console) -> dict[str, Any]:
    rows = await asyncio.to_thread(
        views.board_rows, console.daemon.ledger, console.now(), console.cache
    )
    return {"rows": rows, "health": await console.health()}


@_signed_in
async def board(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    return console.render(request, "board.html", session=session, **await _board_values(console))


@_signed_in
async def board_rows(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    return console.render(
        request, "board_rows.html", session=session, **await _board_values(console)
    )


@_signed_in
async def health_strip(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    return console.render(request, "health.html", session=session, health=await console.health())


def _alert_key(request: web.Request) -> AlertKey | None:
    try:
        return AlertKey.from_reference(unquote(request.match_info["key"]))
    except ValueError:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_key")
        return None


@_signed_in
async def alert_detail(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    key = _alert_key(request)
    page = None
    if key is not None:
        page = await asyncio.to_thread(
            views.alert_page, console.daemon.ledger, key, console.now(), console.cache
        )
    if page is None:
        return console.render(
            request, "missing.html", status=404, session=session, health=await console.health()
        )
    template = "alert_live.html" if request.query.get("part") == "live" else "alert.html"
    return await console.page(request, session, template, page=page)


@_signed_in
async def holds(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    groups = await asyncio.to_thread(views.hold_groups, console.daemon.ledger)
    template = "holds_list.html" if request.query.get("part") == "list" else "holds.html"
    return await console.page(request, session, template, groups=groups)


@_signed_in
async def act_on_holds(request: web.Request, session: Session) -> web.StreamResponse:
    """Approve or reject the chosen held deliveries (of one alert or several) at once."""
    console = request.app[CONSOLE_KEY]
    form = await request.post()
    _check_csrf(form, session)
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


@_signed_in
async def attention(request: web.Request, session: Session) -> web.StreamResponse:
    """The banner of alerts that ring and nobody has acknowledged yet (a fragment)."""
    console = request.app[CONSOLE_KEY]
    ringing = await asyncio.to_thread(
        views.ringing_rows, console.daemon.ledger, console.now(), console.cache
    )
    return console.render(request, "attention.html", session=session, ringing=ringing)


@_signed_in
async def acknowledge(request: web.Request, session: Session) -> web.StreamResponse:
    """A named account acknowledges a ringing alert: the banner goes for everyone."""
    console = request.app[CONSOLE_KEY]
    form = await request.post()
    _check_csrf(form, session)
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


async def sound(request: web.Request) -> web.StreamResponse:
    try:
        body = sound_wav(request.match_info["name"])
    except KeyError:
        raise web.HTTPNotFound(text="no such sound") from None
    return web.Response(
        body=body, content_type="audio/wav", headers={"Cache-Control": "max-age=86400"}
    )


@_signed_in
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
                break
    return response


# ----------------------------------------------------------------------------------- wiring


def console_routes() -> list[web.AbstractRouteDef]:
    from gateway.console.mapdata import map_routes  # noqa: PLC0415 - mapdata imports this module

    return [
        *map_routes(),
        web.get("/", board),
        web.get("/board/rows", board_rows),
        web.get("/health", health_strip),
        web.get("/alerts/{key}", alert_detail),
        web.get("/holds", holds),
        web.post("/holds", act_on_holds),
        web.get("/events", events),
        web.get("/attention", attention),
        web.post("/attention", acknowledge),
        web.get("/sounds/{name}.wav", sound),
        web.get("/login", login_page),
        web.post("/login", login_post),
        web.post("/logout", logout),
        web.get("/lang/{code}", choose_language),
        web.static("/static", STATIC, append_version=False),
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
