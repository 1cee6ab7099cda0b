"""Request signing: Binance's published HMAC vectors, RFC 8032 Ed25519 vectors, payload rules."""

from __future__ import annotations

import base64
from decimal import Decimal
from urllib.parse import parse_qsl, unquote

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from adapters.live.secrets import Credentials
from adapters.live.signing import (
    Ed25519Signer,
    HmacSha256Signer,
    Signer,
    format_value,
    query_string,
    sign_rest,
    sign_ws_params,
    signed_query,
    signer_for,
    ws_payload,
)
from engine.errors import UsageError
from tests.adapters.live.leaks import (
    API_KEY,
    API_SECRET,
    ED25519_PEM,
    ED25519_PUBLIC,
    ED25519_SEED,
    ED25519_SIG_72,
)

# Binance spot REST documentation, "SIGNED endpoint examples for POST /api/v3/order".
REST_PARAMS = [
    ("symbol", "LTCBTC"),
    ("side", "BUY"),
    ("type", "LIMIT"),
    ("timeInForce", "GTC"),
    ("quantity", 1),
    ("price", "0.1"),
    ("recvWindow", 5000),
    ("timestamp", 1499827319559),
]
REST_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
REST_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
# Its "Example 3": query string and body, signed as their concatenation without '&'.
MIXED_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
MIXED_BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"

# Binance spot WebSocket API documentation, "SIGNED request example (HMAC)", params in the
# order of its request (not sorted).
WS_PARAMS = {
    "symbol": "BTCUSDT",
    "side": "SELL",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.01000000",
    "price": "52000.00",
    "newOrderRespType": "ACK",
    "recvWindow": 100,
    "timestamp": 1645423376532,
    "apiKey": API_KEY,
}
WS_PAYLOAD = (
    f"apiKey={API_KEY}&newOrderRespType=ACK&price=52000.00&quantity=0.01000000"
    "&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532"
    "&type=LIMIT"
)
WS_SIGNATURE = "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"

# RFC 8032 section 7.1, test 1: the empty message.
RFC1_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC1_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_binance_rest_hmac_test_vector() -> None:
    signer = HmacSha256Signer(API_SECRET)
    assert query_string(REST_PARAMS) == REST_QUERY
    assert signer.sign(REST_QUERY) == REST_SIGNATURE
    assert signed_query(REST_PARAMS, signer) == f"{REST_QUERY}&signature={REST_SIGNATURE}"
    assert signed_query(dict(REST_PARAMS), signer).endswith(REST_SIGNATURE)


def test_binance_rest_query_and_body_test_vector() -> None:
    signer = HmacSha256Signer(API_SECRET)
    assert sign_rest(signer, MIXED_QUERY, MIXED_BODY) == MIXED_SIGNATURE
    assert sign_rest(signer, MIXED_QUERY + "&" + MIXED_BODY) == REST_SIGNATURE


def test_binance_websocket_api_test_vector() -> None:
    signer = HmacSha256Signer(API_SECRET)
    assert ws_payload(WS_PARAMS) == WS_PAYLOAD
    signed = sign_ws_params(WS_PARAMS, signer)
    assert signed == {**WS_PARAMS, "signature": WS_SIGNATURE}
    assert list(signed)[-1] == "signature"
    assert signed["timestamp"] == 1645423376532  # still a JSON integer
    assert "signature" not in WS_PARAMS  # the input is not modified
    # Re-signing replaces the signature instead of signing it.
    assert sign_ws_params({**signed, "signature": "stale"}, signer) == signed


def test_ed25519_rfc8032_vectors() -> None:
    one = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(RFC1_SEED))
    assert one.sign("") == base64.b64encode(RFC1_SIG).decode()
    two = Ed25519Signer.from_pem(ED25519_PEM)
    assert two.sign("r") == base64.b64encode(ED25519_SIG_72).decode()
    assert two.sign("r") == (
        "kqAJqfDUyrhyDoILX2QlQKKye1QWUD+Ps3YiI+vbadoIWsHkPhWZbkWPNhPQ8R2MOHsurrQwKu6wDSkWErsMAA=="
    )


def test_ed25519_signature_verifies_with_the_public_key() -> None:
    signer = Ed25519Signer.from_pem(ED25519_PEM)
    public = serialization.load_pem_public_key(signer.public_key_pem())
    assert isinstance(public, Ed25519PublicKey)
    assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == (
        ED25519_PUBLIC
    )
    signature = base64.b64decode(signer.sign(REST_QUERY))
    assert len(signature) == 64
    public.verify(signature, REST_QUERY.encode())
    with pytest.raises(InvalidSignature):
        public.verify(signature, REST_QUERY.replace("0.1", "0.2").encode())


def test_ed25519_signature_is_percent_encoded_in_a_query() -> None:
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(RFC1_SEED))
    # No parameters: the payload is empty, RFC 8032 test 1, whose base64 has '+' and '='.
    assert signed_query([], signer) == (
        "signature=5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc%2BbRr0lv18F"
        "lbviRlUUFDjnoQCw%3D%3D"
    )
    query = signed_query([("a", "1")], signer)
    assert query.startswith("a=1&signature=")
    assert dict(parse_qsl(query))["signature"] == signer.sign("a=1")


def test_websocket_ed25519_signature_is_plain_base64() -> None:
    signer = Ed25519Signer.from_pem(ED25519_PEM)
    signed = sign_ws_params(WS_PARAMS, signer)
    assert signed["signature"] == signer.sign(WS_PAYLOAD)
    assert "%" not in signed["signature"]


def test_signers_satisfy_the_protocol_and_hide_keys() -> None:
    hmac_signer = HmacSha256Signer(API_SECRET)
    ed_signer = Ed25519Signer.from_pem(ED25519_PEM)
    assert isinstance(hmac_signer, Signer) and isinstance(ed_signer, Signer)
    assert repr(hmac_signer) == "HmacSha256Signer(<hidden>)"
    assert repr(ed_signer) == "Ed25519Signer(<hidden>)"


def test_any_signer_plugs_into_the_payload_rules() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.payloads: list[str] = []

        def sign(self, payload: str) -> str:
            self.payloads.append(payload)
            return "sig+/="

    recorder = Recorder()
    assert signed_query(REST_PARAMS, recorder) == f"{REST_QUERY}&signature=sig%2B%2F%3D"
    assert sign_ws_params(WS_PARAMS, recorder)["signature"] == "sig+/="
    assert recorder.payloads == [REST_QUERY, WS_PAYLOAD]


def test_signer_for_credentials() -> None:
    hmac_creds = Credentials("binance", API_KEY, secret=API_SECRET)
    assert signer_for(hmac_creds).sign(REST_QUERY) == REST_SIGNATURE
    ed_creds = Credentials("binance", API_KEY, private_key_pem=ED25519_PEM)
    assert signer_for(ed_creds).sign("r") == base64.b64encode(ED25519_SIG_72).decode()


def test_pem_that_is_not_an_ed25519_key() -> None:
    with pytest.raises(UsageError) as err:
        Ed25519Signer.from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", source="k.pem"
        )
    assert str(err.value) == "k.pem: not a readable PEM private key (or a wrong password)"
    ec_pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(UsageError, match="k.pem: an EC key, not Ed25519"):
        Ed25519Signer.from_pem(ec_pem, source="k.pem")


def test_encrypted_pem_needs_its_password() -> None:
    key = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(UsageError, match="k.pem: the private key is encrypted"):
        Ed25519Signer.from_pem(encrypted, source="k.pem")
    signer = Ed25519Signer.from_pem(encrypted, password=b"pw")
    assert signer.sign("r") == base64.b64encode(ED25519_SIG_72).decode()


def test_values_are_formatted_exactly() -> None:
    assert format_value("p", Decimal("52000.00")) == "52000.00"
    assert format_value("p", Decimal("1E+2")) == "100"
    assert format_value("p", Decimal("1E-8")) == "0.00000001"
    assert format_value("flag", True) == "true"
    assert format_value("n", 0) == "0"
    assert query_string([("id", "ck 1/2")]) == "id=ck%201%2F2"
    assert unquote("ck%201%2F2") == "ck 1/2"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, "parameter 'price' is a float \\(0.1\\)"),
        (None, "parameter 'price': cannot send a NoneType"),
        (Decimal("NaN"), "parameter 'price': NaN is not a finite number"),
    ],
)
def test_inexact_values_are_refused(value, message) -> None:
    with pytest.raises(UsageError, match=message):
        query_string([("price", value)])


def test_signature_cannot_be_given_as_a_parameter() -> None:
    with pytest.raises(UsageError, match="added by the signer"):
        signed_query([("a", 1), ("signature", "x")], HmacSha256Signer("s"))
