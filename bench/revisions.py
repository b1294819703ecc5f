"""Earlier revisions measured beside this checkout: built the way this checkout is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compile_like_this_checkout(tree: Path) -> None:
    """Compile a revision's copy of the CAP library with its own script when this checkout's
    modules are compiled (``make compile``), and say what the revision runs: a compiled
    checkout measured against a pure-Python revision would credit the compiler to the
    change."""
    script = tree / "tools" / "compile_cap.py"
    if not (ROOT / "cap_schemas" / ".compiled").exists():
        print("(this checkout and the baseline run as pure Python)", flush=True)
        return
    if not script.exists():
        print("(the baseline revision has no compiled build: it runs as pure Python)", flush=True)
        return
    built = subprocess.run(
        [sys.executable, str(script)], cwd=tree, capture_output=True, check=False
    )
    state = "compiled with mypyc" if built.returncode == 0 else "NOT compiled (its build failed)"
    print(f"(this checkout is compiled; the baseline revision is {state})", flush=True)
