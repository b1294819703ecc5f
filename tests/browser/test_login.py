"""Signing in over HTTP as a browser does: the form's token, wrong passwords, lockout.

This module gets a daemon of its own (the fixture is module-scoped): the lockout here
locks the loopback address the other browser tests sign in from, so it runs last.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.browser.conftest import PASSWORDS, ConsoleDaemon


class Client:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect
        )

    def call(
        self, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(f"{self.url}{path}", data=data, timeout=10) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def form_token(self) -> str:
        status, page, _ = self.call("/login")
        assert status == 200
        found = re.search(r'name="form_token" value="([^"]+)"', page)
        assert found is not None
        return found.group(1)

    def sign_in(self, name: str, password: str) -> tuple[int, str, dict[str, str]]:
        token = self.form_token()
        return self.call(
            "/login", {"name": name, "password": password, "form_token": token, "next": "/"}
        )


@pytest.fixture
def client(console_daemon: ConsoleDaemon) -> Iterator[Client]:
    return Client(console_daemon.url)


class TestStaticFiles:
    def test_served_compressed_and_only_from_their_folder(
        self, console_daemon: ConsoleDaemon
    ) -> None:
        url = f"{console_daemon.url}/static/vendor/leaflet/leaflet.js"
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.headers["Content-Encoding"] == "gzip"
            assert answer.headers["Content-Type"].startswith("text/javascript")
            assert len(answer.read()) < 60_000  # 144 KiB raw
        icon = f"{console_daemon.url}/static/vendor/leaflet/images/marker-icon.png"
        with urllib.request.urlopen(icon, timeout=10) as answer:
            assert answer.read(8) == b"\x89PNG\r\n\x1a\n"
        client = Client(console_daemon.url)
        for path in ("/static/%2e%2e/web.py", "/static/vendor/README.md", "/static/nope.js"):
            assert client.call(path)[0] == 404, path
        # The icon: linked from the pages, and /favicon.ico (asked for anyway) leads to it.
        status, page, _headers = client.call("/login")
        assert status == 200
        assert '<link rel="icon" href="/static/icon.svg"' in page
        with urllib.request.urlopen(f"{console_daemon.url}/favicon.ico", timeout=10) as answer:
            assert answer.url.endswith("/static/icon.svg")
            assert answer.headers["Content-Type"].startswith("image/svg+xml")
            assert answer.read().startswith(b"<svg")


class TestSignIn:
    def test_pages_need_a_session(self, client: Client) -> None:
        status, _page, headers = client.call("/holds")
        assert status == 302
        assert urllib.parse.unquote(headers["Location"]) == "/login?next=/holds"

    def test_good_password_gives_a_strict_http_only_session(self, client: Client) -> None:
        status, _page, headers = client.sign_in("alice", PASSWORDS["alice"])
        assert status == 302
        assert headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert "borderlink_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        status, page, headers = client.call("/")
        assert status == 200
        assert "Signed in as alice (operator)" in page
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]

    def test_a_next_elsewhere_stays_here(self, client: Client) -> None:
        token = client.form_token()
        status, _page, headers = client.call(
            "/login",
            {"name": "alice", "password": PASSWORDS["alice"], "form_token": token,
             "next": "//evil.invalid/x"},
        )  # fmt: skip
        assert status == 302
        assert headers["Location"] == "/"

    def test_without_the_form_token_nobody_signs_in(self, client: Client) -> None:
        status, page, _ = client.call(
            "/login", {"name": "alice", "password": PASSWORDS["alice"], "form_token": "x"}
        )
        assert status == 403
        assert "borderlink_session" not in str(client.jar)
        # The password was right: the page says what failed (the form, e.g. a second tab's),
        # which tells nothing of the account, and offers a fresh form.
        assert "Wrong name or password" not in page
        assert "The sign-in form had expired: sign in again." in page
        token = re.search(r'name="form_token" value="([^"]+)"', page)
        assert token is not None
        status, _page, _ = client.call(
            "/login", {"name": "alice", "password": PASSWORDS["alice"],
                       "form_token": token.group(1), "next": "/"},
        )  # fmt: skip
        assert status == 302

    def test_unknown_name_and_wrong_password_read_the_same(self, client: Client) -> None:
        wrong = client.sign_in("alice", "not-her-password")
        unknown = client.sign_in("mallory", "whatever")
        assert wrong[0] == unknown[0] == 401
        assert "Wrong name or password." in wrong[1]
        assert "Wrong name or password." in unknown[1]

    def test_a_tampered_session_is_refused(self, client: Client) -> None:
        client.sign_in("alice", PASSWORDS["alice"])
        for cookie in client.jar:
            if cookie.name == "borderlink_session":
                value = cookie.value or ""
                cookie.value = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
        status, _page, _ = client.call("/")
        assert status == 302

    def test_lockout_after_repeated_failures(self, client: Client) -> None:
        # lockout_failures = 5 counts per name and per address: this address has already
        # failed twice in this module, so the lock comes at the third guess.
        statuses = [client.sign_in("ada", f"guess-{n}")[0] for n in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        status, page, _ = client.sign_in("ada", PASSWORDS["ada"])  # right, but too late
        assert status == 429
        assert "Too many failed attempts" in page
