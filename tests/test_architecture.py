"""The layering rules of the house (DESIGN.md, "The house"), checked on the code's imports.

* ``cap_schemas`` imports no asyncio, no gateway, adapter or hardware module, no transport;
* ``gateway`` imports no transport library (pyserial, aiomqtt, paho, amqtt), no simulator and
  no adapter module;
* ``adapters`` import no simulator, and of the gateway only its ground floor: the adapter
  contract, the model, errors, metrics, options, backoff, plain text, the command-line
  contract, password hashes, secrets and durable small files;
* no import circles among the modules of the three packages.

Each known departure is listed with the step that removes it; a new one fails this test, and
so does a listed one that is gone (keep the list true).
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cap_schemas", "gateway", "adapters", "hardware")

TRANSPORTS = ("serial", "serial_asyncio_fast", "aiomqtt", "paho", "amqtt")
RULES: dict[str, tuple[str, ...]] = {
    "cap_schemas": ("asyncio", "gateway", "adapters", "hardware", "aiohttp", *TRANSPORTS),
    "gateway": ("adapters", "hardware", *TRANSPORTS),
    "adapters": ("hardware",),
}
# What adapters may use of the gateway: its ground floor.
ADAPTER_GATEWAY = (
    "gateway",  # the package itself: __version__
    "gateway.adapter",
    "gateway.commands",  # the command-line contract (register, add_command): stdlib only
    "gateway.backoff",
    "gateway.model",
    "gateway.errors",
    "gateway.metrics",
    "gateway.options",
    "gateway.passwords",
    "gateway.plaintext",
    "gateway.statefile",
    "gateway.secret_files",
)
# Known departures: (importing file, imported package) -> what removes it.
KNOWN: dict[tuple[str, str], str] = {}


def _known(violation: tuple[str, str]) -> bool:
    path, module = violation
    return any(f == path and _under(module, (p,)) for f, p in KNOWN)


def _files(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Modules a file imports (``from x import y`` gives ``x`` and, when ``x.y`` is a module of
    the tree, ``x.y``); with ``top_level_only``, the imports run when the module loads."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if _exists(candidate):
                    found.add(candidate)
    return found


def _exists(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _under(module: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def _violations() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for package, forbidden in RULES.items():
        for path in _files(package):
            rel = str(path.relative_to(ROOT))
            for module in sorted(_imports(path)):
                if _under(module, forbidden) or (
                    package == "adapters"
                    and _under(module, ("gateway",))
                    and module not in ADAPTER_GATEWAY
                ):
                    found.append((rel, module))
    return found


class TestLayers:
    """Each package imports only what the house allows it."""

    def test_no_new_departures(self) -> None:
        new = [v for v in _violations() if not _known(v)]
        assert new == [], "imports against DESIGN.md's layering: " + ", ".join(
            f"{f} -> {m}" for f, m in new
        )

    def test_the_list_of_departures_is_true(self) -> None:
        found = _violations()
        gone = [
            (f, p) for f, p in KNOWN if not any(v == f and _under(m, (p,)) for v, m in found)
        ]
        assert not gone, f"no longer imported, remove from KNOWN: {sorted(gone)}"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("import gateway.model\n", True), ("from gateway import model\n", True),
         ("def f():\n    import asyncio\n", False)],
    )
    def test_the_walk_reads_imports(self, text: str, expected: bool, tmp_path: Path) -> None:
        sample = tmp_path / "sample.py"
        sample.write_text(text, encoding="utf-8")
        assert ("gateway.model" in _imports(sample)) is expected


# The sans-IO codecs: bytes or samples in, frames out. They report what they refuse (a
# gateway.errors.Rejections tally, a Discarded event, an error) and never count it themselves.
CODECS = (
    "adapters/*/codec.py",
    "adapters/modem/*.py",
    "adapters/kiss/kiss.py",
    "adapters/kiss/ax25.py",
    "adapters/kiss/aprs.py",
    "adapters/pager/tap.py",
    "adapters/pager/pocsag.py",
    "adapters/eas/endec.py",
    "adapters/eas/same_modem.py",
    "adapters/afsk/afsk1200.py",
)


class TestCodecs:
    """A codec is pure: no asyncio, no metrics (the adapter that runs it counts)."""

    def test_codecs_count_nothing(self) -> None:
        found = [
            (str(path.relative_to(ROOT)), module)
            for pattern in CODECS
            for path in sorted(ROOT.glob(pattern))
            for module in sorted(_imports(path))
            if _under(module, ("asyncio", "gateway.metrics"))
        ]
        assert found == []


class TestCircles:
    """No module of the house imports itself back, directly or through others, when it loads."""

    def test_no_import_circles(self) -> None:
        graph: dict[str, set[str]] = {}
        for package in PACKAGES:
            for path in _files(package):
                graph[_module(path)] = {
                    m for m in _imports(path, top_level_only=True) if _exists(m)
                }
        circles: list[list[str]] = []
        state: dict[str, int] = {}  # 1: on the path, 2: done

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(graph.get(node, ())):
                if nxt == node or nxt not in graph:
                    continue
                if state.get(nxt) == 1:
                    circles.append([*path[path.index(nxt):], nxt])
                elif state.get(nxt) is None:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        for node in sorted(graph):
            if node not in state:
                visit(node, [node])
        # A package's __init__ importing its own submodules is not a circle of the house.
        real = [c for c in circles if not all(m.startswith(c[0] + ".") for m in c[1:-1])]
        assert real == [], f"import circles: {real}"


def _top_level_files() -> list[str]:
    """The files at the top of the repository (as git tracks them, when it is a checkout)."""
    if (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return sorted(name for name in listed if "/" not in name)
    return sorted(p.name for p in ROOT.iterdir() if p.is_file())


class TestHouseFolders:
    """Configurations live in config/ (DESIGN.md, "The house"): no TOML other than
    pyproject.toml at the top of the repository, where a user would take it for an example."""

    def test_no_stray_configuration_at_the_top(self) -> None:
        stray = [n for n in _top_level_files() if n.endswith(".toml") and n != "pyproject.toml"]
        assert stray == []
