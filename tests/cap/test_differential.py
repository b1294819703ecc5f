"""The sped-up reader and validator say exactly what the earlier implementation said: the same
acceptance or rejection, the same rule ids, and the same model, warnings, findings and error
messages (compared through a digest), on every corpus alert, on the fuzz seed, on a bilingual
CAP-CP alert and on thousands of seeded mutations of them.

The reference outcomes were recorded by the implementation before the speed-up (see
:mod:`tests.cap.differential`).
"""

from __future__ import annotations

import json

import pytest

from tests.cap.conftest import ALL_FILES, corpus_bytes
from tests.cap.differential import GOLDEN, corpus_cases, edge_cases, generated_cases, outcome

RECORDED: dict[str, dict[str, object]] = json.loads(GOLDEN.read_text(encoding="utf-8"))


def _differences(cases: list[tuple[str, bytes]]) -> list[str]:
    wrong = []
    for case, data in cases:
        got = outcome(data)
        if got != RECORDED[case]:
            wrong.append(f"{case}: recorded {RECORDED[case]}, now {got}")
    return wrong


class TestSameResults:
    """Old and new implementations agree on every case."""

    def test_generated_cases(self) -> None:
        cases = list(generated_cases())
        assert len(cases) == 3002
        # The mutations exercise both outcomes and the rules the speed-up touched.
        accepted = [c for c, _ in cases if RECORDED[c]["accepted"]]
        assert 500 < len(accepted) < len(cases) - 500
        assert _differences(cases) == []

    def test_edge_cases(self) -> None:
        """Shared and NaN polygons, ranges, and times in and around the common form."""
        cases = list(edge_cases())
        assert len(cases) == 253
        accepted = [c for c, _ in cases if RECORDED[c]["accepted"]]
        assert 50 < len(accepted) < len(cases) - 20
        assert _differences(cases) == []

    @pytest.mark.conformance
    @pytest.mark.parametrize(("folder", "name"), ALL_FILES)
    def test_corpus_alert_and_its_mutations(self, folder: str, name: str) -> None:
        cases = list(corpus_cases(name, corpus_bytes(folder, name)))
        assert RECORDED[name]["accepted"] is True
        assert _differences(cases) == []

    def test_a_changed_result_is_caught(self) -> None:
        """The comparison sees a one-character change of one finding's message."""
        case, data = next(iter(generated_cases()))
        recorded = dict(RECORDED[case])
        recorded["digest"] = "0" + str(recorded["digest"])[1:]
        assert outcome(data) != recorded
