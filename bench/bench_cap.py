"""CAP library throughput: parse, and parse + XSD + profile validation, on NAAD samples.

Side by side in one run with capparselib (``CAPParser(text).as_dict()``, which parses and
validates against its own CAP XSD through lxml.objectify) on the same bytes. Each figure is
the median of several timed batches; the ratio is capparselib time / borderlink time
(above 1 means borderlink is faster).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.timing import per_op
from cap_schemas.parse import parse_alert
from cap_schemas.validate import is_valid, validate

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "cap-cp"
SAMPLES = (
    "naad-Sample1_CAPCP_No_Attachment.xml",
    "naad-Sample2_CAPCP_with_Embedded_Large_Audio_File.xml",
    "naad-Sample3_CAPCP_with_Multiple_Embedded_Files.xml",
)
REPEATS = 7
BATCH_SECONDS = 0.15


def _per_op(fn: Callable[[], object]) -> float:
    return per_op(fn, repeats=REPEATS, batch_seconds=BATCH_SECONDS)


def _capparselib() -> Callable[[str], object] | None:
    try:
        from capparselib.parsers import CAPParser  # noqa: PLC0415 - optional baseline
    except ImportError:
        return None

    def run(text: str) -> object:
        return CAPParser(text).as_dict()

    return run


def main() -> None:
    baseline = _capparselib()
    header = (
        f"{'sample':<44} {'KiB':>6} {'parse/s':>9} {'parse+validate/s':>17} "
        f"{'capparselib/s':>14} {'ratio parse':>12} {'ratio full':>11}"
    )
    print(header)
    print("-" * len(header))
    for name in SAMPLES:
        path = CORPUS / name
        if not path.is_file():
            print(f"{name:<44} missing (shared corpus not present)")
            continue
        data = path.read_bytes()
        text = data.decode("utf-8")
        alert = parse_alert(data)
        assert is_valid(validate(alert)), name

        def parse_only(data: bytes = data) -> object:
            return parse_alert(data)

        def full(data: bytes = data) -> object:
            return validate(parse_alert(data))

        t_parse = _per_op(parse_only)
        t_full = _per_op(full)
        if baseline is not None:

            def base_run(text: str = text, run: Callable[[str], object] = baseline) -> object:
                return run(text)

            t_base = _per_op(base_run)
            base = f"{1 / t_base:>14.0f} {t_base / t_parse:>11.2f}x {t_base / t_full:>10.2f}x"
        else:
            base = f"{'n/a':>14} {'-':>12} {'-':>11}"
        short = name.removeprefix("naad-").removesuffix(".xml")[:44]
        print(
            f"{short:<44} {len(data) / 1024:>6.0f} {1 / t_parse:>9.0f} {1 / t_full:>17.0f} {base}"
        )
    print(
        f"\nmedian of {REPEATS} batches of ~{BATCH_SECONDS}s each; ratio = capparselib time / "
        "borderlink time (parse+validate = XSD + CAP 1.2 rules + CAP-CP profile, including "
        "the base64, size and SHA-1 digest checks of embedded files)",
    )


if __name__ == "__main__":
    main()
