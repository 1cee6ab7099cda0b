"""The test credentials of the live-trading tests, and the scan for them in files and logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

# Binance's documentation example key and secret (its signing test vectors use them).
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"

# RFC 8032 section 7.1, test 2: secret key, public key, message 0x72 and its signature.
ED25519_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
ED25519_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
ED25519_SIG_72 = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)
# The seed as PKCS#8 PEM (what `openssl genpkey -algorithm ed25519` writes).
ED25519_PEM_BODY = "MC4CAQAwBQYDK2VwBCIEIEzNCJso/5banbbDRuwRTg9bijGfNaumJNqM9u1PuKb7"
ED25519_PEM = (
    f"-----BEGIN PRIVATE KEY-----\n{ED25519_PEM_BODY}\n-----END PRIVATE KEY-----\n".encode()
)

SECRETS = (API_KEY, API_SECRET, ED25519_PEM_BODY)
"""What must never appear in a journal, a log or a message."""


def _needles() -> list[tuple[str, bytes]]:
    out = []
    for s in SECRETS:
        for form in {s, quote(s, safe="")}:
            out.append((f"{s[:4]}… ({'raw' if form == s else 'percent-encoded'})", form.encode()))
    return out


def scan_files(paths: Iterable[Path]) -> list[str]:
    """'<path>: <which secret>' for every file holding a test secret."""
    found = []
    for path in sorted(paths):
        data = path.read_bytes()
        found.extend(f"{path}: {name}" for name, needle in _needles() if needle in data)
    return found


def scan_log_records(records: Iterable[logging.LogRecord]) -> list[str]:
    """'log record <n>: <which secret>' for every record whose rendered text holds one."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    found = []
    for n, record in enumerate(records):
        text = formatter.format(record).encode()
        found.extend(f"log record {n}: {name}" for name, needle in _needles() if needle in text)
    return found


def files_under(root: Path) -> list[Path]:
    """Every regular file below `root`."""
    return [p for p in root.rglob("*") if p.is_file()]
