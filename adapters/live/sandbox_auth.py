"""The sandbox venue's gatekeeping: who may ask (signatures, timestamps) and how often.

Binance's rules for the WebSocket API, as the sandbox enforces them:

- A signed request carries `apiKey`, `timestamp`, optional `recvWindow` (at most 60,000 ms,
  default 5,000) and `signature` over every other parameter sorted by name
  (`signing.ws_payload`). An unknown key is 401 -2015, a bad signature 400 -1022, and the
  timing rule `timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow` is
  400 -1021 otherwise. A session authenticated with `session.logon` (Ed25519 keys only)
  may leave out `apiKey` and `signature`, not `timestamp`.
- Rate limits: request weight per minute and orders per 10 s and per day, from the limits
  exchangeInfo publishes. A request over a limit is refused with status 429 and
  `retryAfter` (venue ms) in the error's `data`; requests that arrive before that time
  (a client that did not back off) count as violations, and `ban_after` of them ban the
  client for `ban_seconds`: status 418 until then. A client that honours `retryAfter` is
  never banned. Windows are sliding (Binance's are fixed: a sliding window is stricter,
  so a client that passes the sandbox passes Binance).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Iterable, Mapping
from hashlib import sha256
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.live.rate_limit import SlidingWindow, limits_from_binance
from adapters.live.signing import ws_payload
from engine.errors import UsageError

DEFAULT_RECV_WINDOW_MS: Final = 5000
MAX_RECV_WINDOW_MS: Final = 60_000


class ApiError(Exception):
    """A WebSocket-API error reply: HTTP-like status, Binance code and message."""

    def __init__(self, status: int, code: int, msg: str, data: Any = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.data = data

    def body(self) -> dict:
        """The `error` object of the reply."""
        out: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            out["data"] = self.data
        return out


class SandboxAccount:
    """The one account the sandbox knows: an API key with an HMAC secret or an Ed25519
    public key. Its repr never shows the secret."""

    __slots__ = ("api_key", "_secret", "_public")

    def __init__(
        self, api_key: str, *, secret: str | None = None, ed25519_public_pem: bytes | None = None
    ) -> None:
        if (secret is None) == (ed25519_public_pem is None):
            raise UsageError("sandbox account: give either an HMAC secret or an Ed25519 key")
        self.api_key = api_key
        self._secret = secret.encode() if secret is not None else None
        self._public: Ed25519PublicKey | None = None
        if ed25519_public_pem is not None:
            key = serialization.load_pem_public_key(ed25519_public_pem)
            if not isinstance(key, Ed25519PublicKey):
                raise UsageError("sandbox account: the public key is not Ed25519")
            self._public = key

    @property
    def kind(self) -> str:
        """'hmac' or 'ed25519'."""
        return "hmac" if self._secret is not None else "ed25519"

    def verify(self, payload: str, signature: str) -> bool:
        """Whether `signature` signs `payload` with this account's key."""
        if self._secret is not None:
            expected = hmac.new(self._secret, payload.encode(), sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        assert self._public is not None
        try:
            self._public.verify(base64.b64decode(signature, validate=True), payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"SandboxAccount({self.kind}, api_key={self.api_key[:4]}…)"


def check_timing(params: Mapping[str, Any], server_ms: int) -> None:
    """Binance's timing rule for signed requests.

    Raises:
        ApiError: missing or malformed timestamp (-1102), recvWindow too large (-1131),
            outside the window (-1021).
    """
    ts = params.get("timestamp")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise ApiError(
            400,
            -1102,
            "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
        )
    window = params.get("recvWindow", DEFAULT_RECV_WINDOW_MS)
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise ApiError(400, -1102, "Parameter 'recvWindow' was malformed.")
    if window > MAX_RECV_WINDOW_MS:
        raise ApiError(400, -1131, "recvWindow must be less than 60000.")
    if ts >= server_ms + 1000:
        raise ApiError(
            400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if server_ms - ts > window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def check_signed(
    params: Mapping[str, Any], account: SandboxAccount, server_ms: int, *, session_auth: bool
) -> None:
    """The key, signature and timing of a signed request (see the module docstring).

    Raises:
        ApiError: as Binance answers.
    """
    key = params.get("apiKey")
    if key is None and not session_auth:
        raise ApiError(
            400, -1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed."
        )
    if key is not None:
        if key != account.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = params.get("signature")
        if not isinstance(signature, str) or not signature:
            raise ApiError(
                400,
                -1102,
                "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
            )
        try:
            payload = ws_payload(params)
        except UsageError:
            raise ApiError(400, -1022, "Signature for this request is not valid.") from None
        if not account.verify(payload, signature):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
    check_timing(params, server_ms)


_WINDOW_TEXT: Final = {1.0: "1 SECOND", 10.0: "10 SECOND", 60.0: "1 MINUTE", 86400.0: "1 DAY"}


class ServerLimits:
    """Request weight and order counts of the one client the sandbox serves.

    Args:
        rate_limits: exchangeInfo's `rateLimits` (REQUEST_WEIGHT and ORDERS are enforced).
        ban_after: requests sent before a 429's retryAfter that earn a ban.
        ban_seconds: how long a ban lasts.
    """

    def __init__(
        self, rate_limits: Iterable[Mapping], *, ban_after: int = 3, ban_seconds: float = 2.0
    ) -> None:
        self._entries = [
            (dict(item), SlidingWindow(lim))
            for item in rate_limits
            for lim in limits_from_binance([item])
            if lim.kind in ("REQUEST_WEIGHT", "ORDERS")
        ]
        self.windows = [w for _, w in self._entries]
        self.ban_after = ban_after
        self.ban_seconds = ban_seconds
        self.retry_after_ms = 0
        self.banned_until_ms = 0
        self.violations = 0
        """Requests that came before the retryAfter they had been given."""
        self.throttled = 0
        """429 replies."""
        self.banned = 0
        """418 replies."""

    def admit(self, costs: Mapping[str, int], now_ms: int) -> None:
        """Count a request's costs, or refuse it.

        Raises:
            ApiError: 429 over a limit, 418 while banned (both with retryAfter).
        """
        if now_ms < self.banned_until_ms:
            self.banned += 1
            raise self._ban_error(now_ms)
        if now_ms < self.retry_after_ms:
            self.violations += 1
            if self.violations >= self.ban_after:
                self.banned_until_ms = now_ms + int(self.ban_seconds * 1000)
                self.violations = 0
                self.banned += 1
                raise self._ban_error(now_ms)
        now = now_ms / 1000.0
        for w in self.windows:
            cost = costs.get(w.limit.kind, 0)
            if cost and w.wait_time(cost, now) > 0:
                wait_ms = math.ceil(w.wait_time(cost, now) * 1000)
                self.retry_after_ms = max(self.retry_after_ms, now_ms + wait_ms)
                self.throttled += 1
                per = _WINDOW_TEXT.get(w.limit.window, f"{w.limit.window:g} SECOND")
                if w.limit.kind == "ORDERS":
                    msg = (
                        f"Too many new orders; current limit is {w.limit.capacity} orders "
                        f"per {per}."
                    )
                    code = -1015
                else:
                    msg = (
                        f"Too much request weight used; current limit is {w.limit.capacity} "
                        f"request weight per {per}. Please use WebSocket Streams for live "
                        "updates to avoid polling the API."
                    )
                    code = -1003
                data = {"serverTime": now_ms, "retryAfter": self.retry_after_ms}
                raise ApiError(429, code, msg, data)
        for w in self.windows:
            cost = costs.get(w.limit.kind, 0)
            if cost:
                w.add(cost, now)

    def status(self, kinds: Iterable[str], now_ms: int) -> list[dict]:
        """A reply's `rateLimits`: each limit of `kinds` with its `count` so far."""
        wanted = set(kinds)
        return [
            {**item, "count": w.used(now_ms / 1000.0)}
            for item, w in self._entries
            if w.limit.kind in wanted
        ]

    def _ban_error(self, now_ms: int) -> ApiError:
        until = self.banned_until_ms
        return ApiError(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until}. Please use WebSocket "
            "Streams for live updates to avoid bans.",
            {"serverTime": now_ms, "retryAfter": until},
        )
