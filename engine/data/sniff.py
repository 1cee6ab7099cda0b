"""Cheap look at the start of a file (plain or gzip) to tell formats apart."""

from __future__ import annotations

import gzip
import os


def first_line(path: str | os.PathLike, limit: int = 65536) -> str:
    """The first line of a text file, plain or gzip ('' when unreadable or binary)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            line = f.readline(limit)
        return line.decode("utf-8").rstrip("\r\n")
    except (OSError, EOFError, UnicodeDecodeError):
        return ""


PARQUET_MAGIC = b"PAR1"


def is_parquet_file(path: str | os.PathLike) -> bool:
    """True when the file starts with the Parquet magic (whatever its name)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
    except OSError:
        return False
