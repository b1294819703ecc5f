"""One HTTP GET with a size cap, shared by the IPAWS and NWS pollers.

Feeds are untrusted input: the body is read in chunks and refused as soon as it passes the
cap (a ``Content-Length`` over the cap is refused before reading); redirects are not followed
(a feed that moves is a configuration change, not something to follow blindly).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict

from gateway.errors import AdapterConnectionError, AdapterTimeoutError, FrameError


class FeedError(FrameError):
    """A feed response could not be used; ``reason`` labels the rejection metric."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """Status, headers (case-insensitive) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_bytes: int,
    time_limit: float,
) -> HttpResult:
    """GET ``url``; raise :class:`FeedError` (oversize) or an adapter connection/timeout error."""
    try:
        async with session.get(
            url,
            headers=dict(headers or {}),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=time_limit),
        ) as response:
            length = response.content_length
            if length is not None and length > max_bytes:
                msg = f"{url}: response of {length} bytes exceeds the cap of {max_bytes}"
                raise FeedError(msg, reason="oversize")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    msg = f"{url}: response exceeds the cap of {max_bytes} bytes"
                    raise FeedError(msg, reason="oversize")
                chunks.append(chunk)
            return HttpResult(response.status, CIMultiDict(response.headers), b"".join(chunks))
    except TimeoutError as exc:
        msg = f"{url}: no complete answer within {time_limit:g} s"
        raise AdapterTimeoutError(msg) from exc
    except (aiohttp.ClientError, OSError) as exc:
        msg = f"{url}: {exc!r}"
        raise AdapterConnectionError(msg) from exc
