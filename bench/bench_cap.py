"""CAP library throughput: parse, and parse + XSD + profile validation, on the corpus samples.

Side by side in one run, on the same bytes and one CPU core:

* **lxml floor**: lxml's own parse (the hardened parser settings) + the CAP 1.2 XSD, nothing
  else — what any CAP reader built on lxml pays at least;
* **baseline**: this library at an earlier revision (``BENCH_CAP_BASELINE``, default the
  revision before the third round of issue #17), run from ``git archive`` in a worker process
  pinned to the same core, timed in batches interleaved with the current code's so that both
  see the same machine load; when this checkout runs compiled modules (``make compile``) the
  revision's own ``tools/compile_cap.py`` compiles its copy first, so that the compiler is
  not credited to the change (a revision without that tool runs as pure Python, and the
  table says so);
* **current**: parse + validate of this checkout;
* **+points**: the same, then the points of every polygon read (a polygon read from a
  document builds its ``Point`` objects only when they are first read; an area filter, the
  console map or a feed reads them, validation does not);
* capparselib (``CAPParser(text).as_dict()``, which parses and validates against its own CAP
  XSD through lxml.objectify) where it is installed.

Each figure is the median of several timed batches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lxml import etree

from bench.revisions import compile_like_this_checkout
from bench.timing import per_op
from cap_schemas.parse import parse_alert, parse_xml
from cap_schemas.validate import is_valid, validate

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
SAMPLES = (
    "cap-cp/naad-Sample1_CAPCP_No_Attachment.xml",
    "cap-cp/naad-Sample2_CAPCP_with_Embedded_Large_Audio_File.xml",
    "cap-cp/naad-Sample3_CAPCP_with_Multiple_Embedded_Files.xml",
    "cap-cp/naad-Sample6_CAPCP_with_free_drawn_polygon.xml",
    "cap-cp/capparselib-CanadaNaad-2019.xml",
    "ipaws/capparselib-NWS-IDP-PROD-4412298-hurricane-warning-ipaws.xml",
    "nws/gcl-nws-ksto-severe-thunderstorm-2003.cap",
)
# The revision before the third round of issue #17 (model compiled, fewer passes); before
# the reader and validator were first sped up it was 8e8bfa0e42e0.
BASELINE = os.environ.get("BENCH_CAP_BASELINE", "6ba8f6893190e33877f3d19dc3bc06035ceb7d56")
REPEATS = 9
BATCH_SECONDS = 0.15


def _full(data: bytes) -> Callable[[], object]:
    def run() -> object:
        return validate(parse_alert(data))

    return run


def _full_with_points(data: bytes) -> Callable[[], object]:
    """Parse + validate, then every polygon's points read (what an area filter, the console
    map or a feed does): the reader builds them only when they are first read."""

    def run() -> object:
        alert = parse_alert(data)
        findings = validate(alert)
        return findings, [p.points for i in alert.infos for a in i.areas for p in a.polygons]

    return run


def _floor(data: bytes) -> Callable[[], object]:
    """lxml's parse with the hardened parser's settings, then the CAP 1.2 schema."""
    schema = etree.XMLSchema(
        parse_xml((ROOT / "cap_schemas" / "xsd" / "cap12.xsd").read_bytes()).getroottree()
    )
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )

    def run() -> object:
        return schema.validate(etree.fromstring(data, parser).getroottree())

    return run


def _batch(fn: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        fn()
    return time.perf_counter() - started


def worker() -> None:
    """The baseline side: read ``path count`` lines, time ``count`` parse + validate runs of
    that file, answer the seconds (one JSON number per line)."""
    runs: dict[str, Callable[[], object]] = {}
    for line in sys.stdin:
        path, count = line.split()
        if path not in runs:
            runs[path] = _full(Path(path).read_bytes())
            runs[path]()
        print(json.dumps(_batch(runs[path], int(count))), flush=True)


def _pin_one_core() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _archive(revision: str) -> bytes | None:
    """The revision's CAP library as a tar archive, with its compile script and project file
    where it has them (older revisions have no compiled build), or None outside a git
    checkout that has the revision."""
    for paths in (("cap_schemas", "tools/compile_cap.py", "pyproject.toml"), ("cap_schemas",)):
        run = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, *paths],
            capture_output=True,
            check=False,
        )
        if run.returncode == 0:
            return run.stdout
    return None


@contextlib.contextmanager
def _baseline_worker() -> Iterator[subprocess.Popen[str] | None]:
    """The worker process running the baseline revision's ``cap_schemas``, or None when this
    is not a git checkout that has that revision."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-cap-baseline-"))
    try:
        archive = _archive(BASELINE)
        if archive is None:
            yield None
            return
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        compile_like_this_checkout(tmp)
        env = dict(os.environ, PYTHONPATH=f"{tmp}{os.pathsep}{ROOT}")
        # The worker inherits this process's single-core affinity.
        proc = subprocess.Popen(
            [sys.executable, "-c", "from bench.bench_cap import worker; worker()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp,
        )
        try:
            yield proc
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _interleaved(
    fn: Callable[[], object], path: Path, proc: subprocess.Popen[str] | None
) -> tuple[float, float | None]:
    """Median seconds per parse + validate: current and baseline, batches taken in turn."""
    fn()
    count = max(1, int(BATCH_SECONDS / max(_batch(fn, 1), 1e-6)))
    current: list[float] = []
    baseline: list[float] = []
    for _ in range(REPEATS):
        current.append(_batch(fn, count) / count)
        if proc is not None:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(f"{path} {count}\n")
            proc.stdin.flush()
            baseline.append(float(json.loads(proc.stdout.readline())) / count)
    return statistics.median(current), statistics.median(baseline) if baseline else None


def _capparselib() -> Callable[[str], object] | None:
    try:
        from capparselib.parsers import CAPParser  # noqa: PLC0415 - optional baseline
    except ImportError:
        return None

    def run(text: str) -> object:
        return CAPParser(text).as_dict()

    return run


def main() -> None:
    _pin_one_core()
    other = _capparselib()
    header = (
        f"{'sample':<40} {'KiB':>5} {'lxml floor/s':>12} {'baseline/s':>10} {'current/s':>10}"
        f" {'speed-up':>8} {'floor/cur':>9} {'+points/s':>9} {'parse/s':>8}"
        f" {'capparselib/s':>13}"
    )
    print(header)
    print("-" * len(header))
    with _baseline_worker() as proc:
        for name in SAMPLES:
            path = CORPUS / name
            short = Path(name).stem.removeprefix("naad-")[:40]
            if not path.is_file():
                print(f"{short:<40} missing (shared corpus not present)")
                continue
            data = path.read_bytes()
            assert is_valid(validate(parse_alert(data))) or "nws/" in name, name
            t_floor = per_op(_floor(data), repeats=REPEATS, batch_seconds=BATCH_SECONDS)
            t_cur, t_base = _interleaved(_full(data), path, proc)

            def parse_only(data: bytes = data) -> object:
                return parse_alert(data)

            t_parse = per_op(parse_only, repeats=REPEATS, batch_seconds=BATCH_SECONDS)
            t_points = per_op(
                _full_with_points(data), repeats=REPEATS, batch_seconds=BATCH_SECONDS
            )
            base_rate, speed_up = (
                (f"{1 / t_base:.0f}", f"{t_base / t_cur:.2f}x") if t_base else ("n/a", "-")
            )
            theirs = "n/a"
            if other is not None:

                def other_run(
                    text: str = data.decode("utf-8"), run: Callable[[str], object] = other
                ) -> object:
                    return run(text)

                try:
                    t_other = per_op(other_run, repeats=REPEATS, batch_seconds=BATCH_SECONDS)
                    theirs = f"{1 / t_other:.0f}"
                except Exception:  # capparselib refuses some real alerts (empty references)
                    theirs = "refuses it"
            print(
                f"{short:<40} {len(data) / 1024:>5.0f} {1 / t_floor:>12.0f} {base_rate:>10}"
                f" {1 / t_cur:>10.0f} {speed_up:>8} {t_cur / t_floor:>8.1f}x"
                f" {1 / t_points:>9.0f} {1 / t_parse:>8.0f} {theirs:>13}",
                flush=True,
            )
    print(
        f"\none core; median of {REPEATS} batches of ~{BATCH_SECONDS}s each; baseline = "
        f"revision {BASELINE[:12]} (current and baseline batches interleaved); speed-up = "
        "baseline time / current time; floor/cur = how many times the lxml parse + XSD floor "
        "the full parse + XSD + CAP 1.2 rules + profile rules take (including the base64, size "
        "and SHA-1 digest checks of embedded files); +points = the same, then every polygon's "
        "points read (built on first use)",
    )


if __name__ == "__main__":
    main()
