"""The two-person rule: an alert issued in the console waits for a second operator.

A route with ``approval = "two-person"`` holds each of its deliveries of an alert issued in
the console (source ``console``) until an operator *other than the one who issued it*
approves. The held outbox entry's reason names the author (``awaiting second operator:
issued by alice``); the journal keeps that line with the hold and ``approved by bob`` with
the approval, so the audit trail has both names.

Who may not approve such an entry:

* its author (console, API with a personal token or the console's session): the ledger's
  state machine refuses it (:func:`refusal`), whatever door the approval came through;
* a machine token of ``[http] token_file``: it names nobody, so it cannot be the second
  person (the HTTP API refuses it before asking the ledger).

Rejecting is not restricted: the author may withdraw their own alert before it goes out.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "APPROVALS",
    "CONSOLE_SOURCE",
    "SINGLE",
    "TWO_PERSON",
    "author_of",
    "first_refusal",
    "hold_reason",
    "refusal",
]

CONSOLE_SOURCE = "console"  # the source of what the console issues
SINGLE = "single"
TWO_PERSON = "two-person"
APPROVALS = (SINGLE, TWO_PERSON)

_PREFIX = "awaiting second operator: issued by "
UNKNOWN_AUTHOR = "an unknown operator"


def hold_reason(author: str) -> str:
    """The reason of a delivery held under the two-person rule (it names the author)."""
    return _PREFIX + (author or UNKNOWN_AUTHOR)


def author_of(reason: str) -> str | None:
    """The author an entry waits on a second operator for, or None when it does not."""
    return reason[len(_PREFIX) :] if reason.startswith(_PREFIX) else None


def refusal(reason: str, by: str, *, named: bool = True) -> str:
    """Why ``by`` may not approve an entry held with ``reason`` (empty when they may);
    ``named`` is False for a machine token."""
    author = author_of(reason)
    if author is None:
        return ""
    if not named:
        return (
            "two-person rule: a second operator approves by name (a console account or its"
            " personal token), not with a machine token"
        )
    if by == author:
        return f"two-person rule: {by} issued this alert; a second operator must approve it"
    return ""


def first_refusal(reasons: Iterable[str], by: str, *, named: bool = True) -> str:
    """The first refusal among entries held with ``reasons`` (a batch is approved whole or
    not at all), or empty."""
    return next((why for r in reasons if (why := refusal(r, by, named=named))), "")
