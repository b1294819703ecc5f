"""The console's state and what every page uses: the :class:`Console` of one daemon (its
accounts, sessions, templates and live feed), the key it is kept under in the aiohttp
application, the security headers, who a request is, and the sign-in and CSRF checks.

The page modules (:mod:`~gateway.console.web`, :mod:`~gateway.console.mapdata`,
:mod:`~gateway.console.incident_pages`) import it; it imports none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import structlog
from aiohttp import web

from gateway.config import ConsoleConfig
from gateway.console import views
from gateway.console.accounts import Account, account_for_token, read_accounts
from gateway.console.geofiles import geo_urls
from gateway.console.i18n import LANGUAGES, words
from gateway.console.live import JournalFeed
from gateway.console.lockout import FailureStore, Lockout
from gateway.console.partners import partner_health
from gateway.console.sessions import COOKIE_NAME, Session, SessionSigner, load_or_create_secret
from gateway.errors import ConfigError
from gateway.metrics import INPUT_REJECTED

log = structlog.get_logger(__name__)

__all__ = [
    "COMPONENT",
    "CONSOLE_KEY",
    "LANG_COOKIE",
    "SECURITY_HEADERS",
    "Console",
    "Handler",
    "check_csrf",
    "identify",
    "signed_in",
]

LANG_COOKIE = "borderlink_lang"
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
            store=self._failure_store,  # the ledger: shared by the instances on it
        )
        self.cache = views.ParsedCache()
        self.feed = JournalFeed(lambda: daemon.ledger, daemon.clock.now)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("gateway.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals["duration"] = views.duration
        self.env.globals["geo_urls"] = geo_urls  # the boundary files (the compose map)
        self.env.filters["quote"] = lambda text: quote(str(text), safe="")

    def _failure_store(self) -> FailureStore | None:
        """The ledger, once the daemon has opened it."""
        try:
            store: FailureStore = self.daemon.ledger
        except (RuntimeError, AttributeError):  # not opened yet
            return None
        return store

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
        cluster = await asyncio.to_thread(self.daemon.cluster)
        partners = await asyncio.to_thread(
            partner_health, self.daemon.ledger, self.daemon.config.partners, self.now()
        )
        return [
            *views.health_lines(
                sources,
                self.daemon.sink_health(),
                outbox,
                self.now(),
                self.config.stale_seconds,
                cluster=cluster,
            ),
            *partners,
        ]


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


def signed_in(handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> Handler:
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


def check_csrf(form: Mapping[str, Any], session: Session) -> None:
    """A form that changes something must carry the session's CSRF token."""
    if not session.csrf_ok(str(form.get("csrf", ""))):
        INPUT_REJECTED.inc(component=COMPONENT, reason="csrf")
        raise web.HTTPForbidden(text="the form's token is stale: reload the page")


