"""Remake ``cap_schemas/data/sgc_clc.csv`` from its source column, and measure its coverage.

Run by hand when the source table changes (the output is committed; nothing runs this at
run time)::

    python -m cap_schemas.build_sgc_clc           # rewrite the table, print the coverage
    python -m cap_schemas.build_sgc_clc --check   # exit 1 if the committed table differs

The column ``clc_source`` is the community table as it was taken (see the header lines of
the CSV). The column ``clc`` is what the translations use, made by one rule:

* a census subdivision (7 digits) that the source maps only to whole-province codes
  (``080000`` British Columbia for Surrey) takes the codes of its census division (the first
  four digits: ``5915`` Greater Vancouver, five forecast regions) when the source maps that
  division below province level; ``basis`` is then ``division``. A subdivision lies inside
  its division, so the division's regions cover it: the result is never wider than the
  source, only less wide.
* every other row keeps the source's codes (``basis`` ``source``).

*Coverage* is the share of census subdivisions whose codes are all below province level
(none of them a province, territory group or all of Canada).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

COLUMNS = ("sgc", "clc", "scale", "name", "basis", "clc_source")
RULE_LINE = (
    "# Rule (python -m cap_schemas.build_sgc_clc): clc = clc_source, except a census subdivision "
    "the source maps only to whole-province codes takes its census division's codes when "
    "those are below province level (basis = division)."
)


@dataclass(frozen=True, slots=True)
class Coverage:
    """Census subdivisions mapped below province level, in the source and in the table."""

    subdivisions: int
    below_before: int
    below_after: int

    def share(self, count: int) -> float:
        return count / self.subdivisions if self.subdivisions else 0.0

    def line(self) -> str:
        return (
            f"# Coverage: {self.below_after} of {self.subdivisions} census subdivisions "
            f"({self.share(self.below_after):.1%}) map below province level "
            f"(source: {self.below_before}, {self.share(self.below_before):.1%})."
        )


def _split(text: str) -> tuple[list[str], list[dict[str, str]]]:
    comments = [line for line in text.splitlines() if line.startswith("#")]
    body = "\n".join(line for line in text.splitlines() if line and not line.startswith("#"))
    rows = [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(io.StringIO(body))]
    return comments, rows


def _wide_codes(rows: Sequence[dict[str, str]]) -> frozenset[str]:
    """The CLC codes of whole provinces, territories (or groups of them) and all of Canada."""
    return frozenset(c for r in rows if r["scale"] in ("N", "PT") for c in r["source"].split())


def _below(codes: str, wide: frozenset[str]) -> bool:
    listed = codes.split()
    return bool(listed) and not any(c in wide for c in listed)


def build(text: str) -> tuple[str, Coverage]:
    """The table ``text`` remade by the rule of the module docstring, and its coverage."""
    comments, rows = _split(text)
    for row in rows:
        row["source"] = row.get("clc_source") or row["clc"]
    wide = _wide_codes(rows)
    by_code = {r["sgc"]: r for r in rows}
    out = io.StringIO()
    kept = [c for c in comments if not c.startswith(("# Rule ", "# Coverage: "))]
    writer = csv.writer(out, lineterminator="\n")
    subdivisions = below_before = below_after = 0
    table: list[list[str]] = []
    for row in rows:
        codes, basis = row["source"], "source"
        if row["scale"] == "CSD":
            division = by_code.get(row["sgc"][:4])
            if (
                codes.split()
                and all(c in wide for c in codes.split())
                and division is not None
                and _below(division["source"], wide)
            ):
                codes, basis = division["source"], "division"
            subdivisions += 1
            below_before += _below(row["source"], wide)
            below_after += _below(codes, wide)
        table.append([row["sgc"], codes, row["scale"], row["name"], basis, row["source"]])
    coverage = Coverage(subdivisions, below_before, below_after)
    out.write("\n".join([*kept, RULE_LINE, coverage.line()]) + "\n")
    writer.writerow(COLUMNS)
    writer.writerows(table)
    return out.getvalue(), coverage


def _table_path() -> Path:
    return Path(str(resources.files("cap_schemas").joinpath("data/sgc_clc.csv")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_schemas.build_sgc_clc")
    parser.add_argument("--check", action="store_true", help="exit 1 if the table differs")
    args = parser.parse_args(argv)
    path = _table_path()
    current = path.read_text(encoding="utf-8")
    made, coverage = build(current)
    sys.stdout.write(coverage.line().removeprefix("# ") + "\n")
    if args.check:
        if made != current:
            sys.stdout.write(f"{path.name} is not what the build makes; run without --check\n")
            return 1
        return 0
    path.write_text(made, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
