"""Request signing for Binance: HMAC-SHA256 and Ed25519 behind one `Signer` protocol.

A venue adapter takes any `Signer` (the signing hook): it builds the payload by the venue's
rule and appends `signer.sign(payload)`. What Binance signs:

- REST (`/api/v3/...`, `/fapi/v1/...`): the query string exactly as sent, followed directly
  by the form body when there is one (no `&` between them: Binance's "Example 3"). Parameter
  order is the caller's; the signature goes last as `signature=...`.
- WebSocket API (`order.place`, ...): every parameter except `signature`, sorted by name,
  as `name=value` joined by `&`, values not percent-encoded; the signature is then added to
  the request's `params`.

HMAC signatures are lower-case hex; Ed25519 signatures are base64 (Binance's rule), which
contains `+`, `/` and `=` and so is percent-encoded in a query string. Values are formatted
exactly (`str`, `int`, `Decimal`, `bool` as `true`/`false`); a float is refused because its
text is not always the decimal the caller meant (0.1 + 0.2 is 0.30000000000000004).

Binance also accepts RSA keys; they are not supported here.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.live.secrets import Credentials
from engine.errors import UsageError

Params = Mapping[str, object] | Iterable[tuple[str, object]]
"""Request parameters: a mapping or (name, value) pairs, in the order to send them."""


@runtime_checkable
class Signer(Protocol):
    """Anything that signs a payload string; what a venue adapter is given."""

    def sign(self, payload: str) -> str:
        """The signature of `payload` (UTF-8), as the text the venue expects."""
        ...


class HmacSha256Signer:
    """HMAC-SHA256 with the API secret as the key; the signature is lower-case hex."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise UsageError("HMAC signer: the secret is empty")
        self._key = secret.encode("utf-8")

    def sign(self, payload: str) -> str:
        """Hex HMAC-SHA256 of `payload`."""
        return hmac.digest(self._key, payload.encode("utf-8"), "sha256").hex()

    def __repr__(self) -> str:
        return "HmacSha256Signer(<hidden>)"


class Ed25519Signer:
    """Ed25519 with a private key; the signature is base64 (64 bytes, 88 characters)."""

    __slots__ = ("_key",)

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def from_pem(
        cls, pem: bytes, *, source: str = "private key", password: bytes | None = None
    ) -> Ed25519Signer:
        """Load a PEM private key (PKCS#8, as `openssl genpkey -algorithm ed25519` writes).

        Raises:
            UsageError: not a PEM private key, encrypted without `password`, a wrong
                password, or a key of another algorithm (named, never quoted).
        """
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except TypeError:
            raise UsageError(
                f"{source}: the private key is encrypted; decrypt it "
                "(openssl pkey -in KEY -out KEY.plain) or give its password"
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            raise UsageError(
                f"{source}: not a readable PEM private key (or a wrong password)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise UsageError(
                f"{source}: an {type(key).__name__.removesuffix('PrivateKey').lstrip('_')} "
                "key, not Ed25519; only HMAC secrets and Ed25519 keys are supported"
            )
        return cls(key)

    def sign(self, payload: str) -> str:
        """Base64 Ed25519 signature of `payload`."""
        return base64.b64encode(self._key.sign(payload.encode("utf-8"))).decode("ascii")

    def public_key_pem(self) -> bytes:
        """The public key (SubjectPublicKeyInfo PEM): what is registered with the venue."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return "Ed25519Signer(<hidden>)"


def signer_for(creds: Credentials) -> Signer:
    """The signer for a set of credentials: HMAC for a secret, Ed25519 for a PEM key."""
    if creds.kind == "hmac":
        assert creds.secret is not None
        return HmacSha256Signer(creds.secret)
    assert creds.private_key_pem is not None
    return Ed25519Signer.from_pem(creds.private_key_pem, source=creds.source or creds.venue)


def format_value(name: str, value: object) -> str:
    """A parameter value as the exact text sent: str, int, Decimal, bool (true/false).

    Raises:
        UsageError: a float (not exact), None or another type, naming the parameter.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise UsageError(f"parameter {name!r}: {value} is not a finite number")
        return format(value, "f")
    if isinstance(value, float):
        raise UsageError(
            f"parameter {name!r} is a float ({value!r}); pass the exact decimal as a str or Decimal"
        )
    raise UsageError(f"parameter {name!r}: cannot send a {type(value).__name__}")


def _pairs(params: Params) -> list[tuple[str, object]]:
    items = list(params.items() if isinstance(params, Mapping) else params)
    for name, _ in items:
        if name == "signature":
            raise UsageError("parameter 'signature' is added by the signer, not given")
    return items


def query_string(params: Params) -> str:
    """`name=value&...` in the given order, values percent-encoded (RFC 3986 unreserved kept)."""
    return "&".join(
        f"{quote(name, safe='')}={quote(format_value(name, value), safe='')}"
        for name, value in _pairs(params)
    )


def sign_rest(signer: Signer, query: str, body: str = "") -> str:
    """The REST signature: of the query string followed directly by the body (no `&`)."""
    return signer.sign(query + body)


def signed_query(params: Params, signer: Signer) -> str:
    """The query string of `params` with `&signature=...` appended (percent-encoded)."""
    query = query_string(params)
    signature = f"signature={quote(sign_rest(signer, query), safe='')}"
    return f"{query}&{signature}" if query else signature


def ws_payload(params: Mapping[str, object]) -> str:
    """The WebSocket-API signature payload: parameters but `signature`, sorted by name."""
    # Text values (most of an order's) skip format_value: this is on every order's path.
    return "&".join(
        f"{name}={v if type(v) is str else format_value(name, v)}"
        for name, v in sorted(params.items())
        if name != "signature"
    )


def sign_ws_params(params: Mapping[str, object], signer: Signer) -> dict[str, object]:
    """A copy of a WebSocket-API request's `params` with its `signature` added.

    Values keep their JSON types (an int timestamp stays an int); an existing `signature` is
    replaced, never signed.
    """
    out = {k: v for k, v in params.items() if k != "signature"}
    out["signature"] = signer.sign(ws_payload(out))
    return out
