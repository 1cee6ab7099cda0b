"""Importing a user's Python file (a strategy, a risk rule) under a unique module name."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from engine.errors import UsageError


def import_user_file(path: str | Path, prefix: str, what: str) -> ModuleType:
    """Import `path` as module `prefix + stem` (registered in sys.modules, which numba's
    cache needs); UsageError if it is missing. Exceptions raised by the file's own code
    propagate, for the caller to name what failed."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such {what} file")
    name = prefix + re.sub(r"\W", "_", p.stem)
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
