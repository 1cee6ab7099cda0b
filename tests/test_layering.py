"""The layers are enforced: the engine loads no UI or network code, adapters no cockpit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_FOR_ENGINE = ("textual", "rich", "websockets", "cockpit", "adapters")


def _modules_after_import(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_engine_imports_no_ui_or_network() -> None:
    engine_modules = sorted(
        "engine." + str(p.relative_to(ROOT / "engine").with_suffix("")).replace("/", ".")
        for p in (ROOT / "engine").rglob("*.py")
        if p.name != "__init__.py"
    )
    code = "\n".join(f"import {m}" for m in ["engine", *engine_modules])
    loaded = _modules_after_import(code)
    assert "engine.events" in loaded
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_FOR_ENGINE)
    assert bad == []


def test_adapters_import_no_cockpit() -> None:
    adapter_modules = sorted(
        "adapters." + p.stem for p in (ROOT / "adapters").glob("*.py") if p.name != "__init__.py"
    )
    loaded = _modules_after_import("\n".join(f"import {m}" for m in adapter_modules))
    assert "adapters.formats" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in ("cockpit", "textual")) == []


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout
