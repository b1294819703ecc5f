"""Compile the CAP library's hot modules with mypyc, in place, next to their sources.

The ``.py`` files stay the source: Python imports the compiled extension (``*.so``) when one
sits beside the module, the pure-Python module when none does. ``make compile`` (part of
``make setup``) runs this; ``python tools/compile_cap.py --clean`` removes what it built.

A stamp (``cap_schemas/.compiled``) records the SHA-256 of each compiled source so that a
test can tell a compiled module built from an older source (tests/cap/test_compiled.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The hot path of parse + XSD + profile checks: the model and the findings (their records
# built natively), the reader, the validator and the CAP 1.2 and CAP-CP rules. The model's
# Point and Polygon stay ordinary classes inside the compiled module (mypyc_attr): a polygon
# builds its points on first read through __getattr__ and a slot set after construction.
MODULES = (
    "cap_schemas/model.py",
    "cap_schemas/parse.py",
    "cap_schemas/validate.py",
    "cap_schemas/rules/__init__.py",
    "cap_schemas/rules/core.py",
    "cap_schemas/rules/capcp.py",
)
STAMP = ROOT / "cap_schemas" / ".compiled"
GROUP = "cap_schemas_compiled"


def source_digests() -> dict[str, str]:
    """SHA-256 of each compiled module's source, by path relative to the repository."""
    return {m: hashlib.sha256((ROOT / m).read_bytes()).hexdigest() for m in MODULES}


def built_files() -> list[Path]:
    """The extension files a build leaves in the source tree."""
    found = [p for m in MODULES for p in (ROOT / m).parent.glob(Path(m).stem + ".*.so")]
    return found + sorted(ROOT.glob(f"{GROUP}__mypyc.*.so"))


def clean() -> None:
    """Remove the extensions, the stamp and the build directory."""
    for path in built_files():
        path.unlink()
    STAMP.unlink(missing_ok=True)
    shutil.rmtree(ROOT / "build", ignore_errors=True)


def build() -> None:
    """Compile MODULES in place and write the stamp."""
    from mypyc.build import mypycify  # noqa: PLC0415 -- a development dependency
    from setuptools import setup  # noqa: PLC0415 -- a development dependency

    clean()
    setup(
        name="borderlink-compiled",
        packages=[],
        py_modules=[],
        ext_modules=mypycify(list(MODULES), opt_level="3", group_name=GROUP),
        script_args=["--quiet", "build_ext", "--inplace"],
    )
    STAMP.write_text(json.dumps(source_digests(), indent=1, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    if argv == ["--clean"]:
        clean()
    elif not argv:
        build()
    else:
        print("usage: compile_cap.py [--clean]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
