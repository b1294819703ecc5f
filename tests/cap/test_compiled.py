"""The CAP library's hot modules run compiled (mypyc, ``make compile``) and from their source.

Under ``CI=true`` a pure-Python import fails the run, so that a build that lost the compiler
cannot silently lose the speed; elsewhere the pure-Python fallback is allowed. Either way a
compiled module built from another version of its source fails: Python would import it in
place of the edited ``.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import compile_cap  # noqa: E402

# Module name -> source path ("cap_schemas/rules/__init__.py" is the package cap_schemas.rules:
# imported under any other name it would be a second copy of the package's module).
SOURCES = {
    m.removesuffix(".py").removesuffix("/__init__").replace("/", "."): m
    for m in compile_cap.MODULES
}
MODULES = list(SOURCES)


def _compiled(name: str) -> bool:
    origin = importlib.import_module(name).__file__ or ""
    return origin.endswith(".so")


@pytest.mark.parametrize("name", MODULES)
def test_compiled_module_imported_under_ci(name: str) -> None:
    if os.environ.get("CI") != "true" and not _compiled(name):
        pytest.skip("pure-Python fallback (allowed outside CI; run make compile)")
    module = importlib.import_module(name)
    assert _compiled(name), f"{name} imported from {module.__file__}, not its compiled build"


@pytest.mark.parametrize("name", MODULES)
def test_compiled_module_matches_its_source(name: str) -> None:
    if not _compiled(name):
        pytest.skip("not compiled")
    assert compile_cap.STAMP.exists(), "compiled modules without a stamp: run make compile"
    recorded = json.loads(compile_cap.STAMP.read_text())
    source = SOURCES[name]
    assert recorded.get(source) == compile_cap.source_digests()[source], (
        f"{name} was compiled from another version of {source}: run make compile"
    )


def test_every_compiled_module_is_listed() -> None:
    """Each listed module exists, and no stray extension shadows an unlisted one."""
    for module in compile_cap.MODULES:
        assert (ROOT / module).is_file(), module
    listed = {ROOT / m for m in compile_cap.MODULES}
    for so in (ROOT / "cap_schemas").rglob("*.so"):
        assert so.parent / (so.name.split(".")[0] + ".py") in listed, f"stray extension {so}"
    assert importlib.util.find_spec("cap_schemas") is not None
