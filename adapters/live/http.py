"""A small asynchronous HTTP GET for venue REST endpoints (depth snapshots, exchange info).

The standard library's `urllib` runs in the event loop's default thread pool: market data
needs a handful of REST calls an hour (a snapshot per resync), which does not justify an
HTTP client dependency. `RestClient` puts the venue's rate limits in front of it and honours
429/418 with `Retry-After` by pausing every caller, then retrying (GETs are idempotent).

URLs are logged without their query string: signed requests carry their signature there.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.live.rate_limit import RateLimiter
from engine.errors import CockpitError, DataError

log = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class HttpStatusError(CockpitError):
    """A venue answered a REST request with an error status."""

    title = "Venue error"

    def __init__(self, url: str, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{_public(url)}: HTTP {status} {body[:200].decode(errors='replace')}")


@dataclass(frozen=True)
class HttpResponse:
    """Status, headers (lower-case names) and body of one response."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def retry_after(self) -> float | None:
        """The Retry-After header in seconds (delta seconds or an HTTP date), if any."""
        return parse_retry_after(self.headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After value: `120`, `0.5` (tolerated) or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _public(url: str) -> str:
    """The URL without its query string (which may hold a signature)."""
    return url.split("?", 1)[0]


def _opener_for(url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in _LOOPBACK:
        # A proxy configured in the environment must not capture loopback traffic.
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _get_blocking(url: str, headers: Mapping[str, str], timeout: float) -> HttpResponse:
    req = urllib.request.Request(url, headers=dict(headers), method="GET")
    try:
        with _opener_for(url).open(req, timeout=timeout) as resp:
            body = resp.read()
            return HttpResponse(resp.status, _lower(resp.headers.items()), body)
    except urllib.error.HTTPError as err:  # 4xx and 5xx still carry a useful response
        body = err.read() if err.fp is not None else b""
        return HttpResponse(err.code, _lower(err.headers.items() if err.headers else []), body)


def _lower(items) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


async def http_get(
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """GET `url` with query `params` in a worker thread; any status is returned, not raised.

    Raises:
        OSError: the connection failed or timed out (urllib.error.URLError is an OSError).
    """
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _get_blocking, url, headers or {}, timeout)


class RestClient:
    """GETs JSON from one venue's REST base URL under its rate limits.

    Args:
        base_url: e.g. `https://api.binance.com`.
        limiter: the venue's REST limits (a fresh unlimited one when None).
        timeout: per request, seconds.
        max_retries: retries after 429/418 before giving up with HttpStatusError.
        used_weight: optional (header name, limit kind): the venue's report of spent weight,
            fed to the limiter (Binance: `x-mbx-used-weight-1m`, REQUEST_WEIGHT).
    """

    def __init__(
        self,
        base_url: str,
        *,
        limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        used_weight: tuple[str, str] | None = None,
        get: Callable[..., Any] = http_get,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or RateLimiter()
        self.timeout = timeout
        self.max_retries = max_retries
        self.used_weight = used_weight
        self._get = get
        self.requests = 0
        self.throttled = 0
        """Responses with 429 or 418."""

    async def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        costs: Mapping[str, int] | None = None,
    ) -> Any:
        """The decoded JSON body of GET `path`, after waiting for room under the limits.

        Raises:
            HttpStatusError: an error status (429/418 after `max_retries` retries).
            DataError: the body is not JSON.
            OSError: the connection failed.
        """
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            await self.limiter.acquire(costs)
            self.requests += 1
            resp = await self._get(url, params, timeout=self.timeout)
            if self.used_weight is not None:
                used = resp.headers.get(self.used_weight[0])
                if used is not None and used.isdigit():
                    self.limiter.observe_used(self.used_weight[1], int(used))
            if resp.status in (429, 418):
                self.throttled += 1
                self.limiter.on_http_status(resp.status, resp.retry_after())
                if attempt < self.max_retries:
                    continue
            if resp.status >= 400:
                raise HttpStatusError(url, resp.status, resp.body)
            try:
                return orjson.loads(resp.body)
            except orjson.JSONDecodeError as exc:
                raise DataError(f"{_public(url)}: response is not JSON: {exc}") from None
        raise AssertionError("unreachable")  # the loop returns or raises
