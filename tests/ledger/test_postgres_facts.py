"""The decisions of PostgreSQL's admission read its facts together (one round trip for a
new alert): the scenarios of the admission, provenance and identity suites run here again on
PostgreSQL alone, with every read of the facts -- before the decision and again under the
admission's locks -- compared with what the shared reader finds on the same snapshot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from cap_schemas.model import AlertKey
from gateway.identity import Probe
from gateway.ledger import Facts
from gateway.storage.postgres import PostgresLedger
from gateway.storage.sql_admission import read_facts
from gateway.storage.sql_rows import Connection
from tests.ledger.test_admission import TestCancel as TestCancelCrossChecked
from tests.ledger.test_admission import TestOtherSenders as TestOtherSendersCrossChecked
from tests.ledger.test_admission import TestStale as TestStaleCrossChecked
from tests.ledger.test_admission import TestUpdate as TestUpdateCrossChecked
from tests.ledger.test_identity import TestCancelByTheOtherPath as TestCancelByOtherPathCrossChecked
from tests.ledger.test_identity import TestNaadRelay as TestNaadRelayCrossChecked
from tests.ledger.test_identity import TestNwsWarningByTwoFeeds as TestTwoFeedsCrossChecked
from tests.ledger.test_identity import TestSameHeader as TestSameHeaderCrossChecked
from tests.ledger.test_identity import TestTrustAmongCopies as TestTrustCrossChecked
from tests.ledger.test_identity import TestWindow as TestWindowCrossChecked
from tests.ledger.test_provenance import TestProvenanceRule as TestProvenanceCrossChecked

__all__ = [
    "TestCancelByOtherPathCrossChecked",
    "TestCancelCrossChecked",
    "TestNaadRelayCrossChecked",
    "TestOtherSendersCrossChecked",
    "TestProvenanceCrossChecked",
    "TestSameHeaderCrossChecked",
    "TestStaleCrossChecked",
    "TestTrustCrossChecked",
    "TestTwoFeedsCrossChecked",
    "TestUpdateCrossChecked",
    "TestWindowCrossChecked",
]

# the shared ledger fixtures, on PostgreSQL only
pytestmark = pytest.mark.parametrize("open_ledger", ["postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def cross_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Facts]]:
    """Every read of an admission's facts, checked against the shared reader's."""
    reads: list[Facts] = []
    own = PostgresLedger._read_facts

    def both(
        conn: Connection,
        key: AlertKey,
        references: Sequence[AlertKey],
        ident: Probe | None,
    ) -> Facts:
        facts = own(conn, key, references, ident)
        assert facts == read_facts(conn, key, references, ident)
        reads.append(facts)
        return facts

    monkeypatch.setattr(PostgresLedger, "_read_facts", staticmethod(both))
    yield reads
    assert reads, "the scenario read no facts: nothing was compared"



