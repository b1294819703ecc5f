"""Errors raised by the CAP library.

Error tree::

    CapError (ValueError)
    ├── CapParseError        the bytes are not a CAP document we accept (line/column given)
    │   └── CapHostileError  the input tried something dangerous (DTD, entities, XInclude,
    │                        external reference, size or depth bomb)
    ├── CapValidationError   a document parsed but breaks a rule that prevents its use
    └── CapSignatureError    a signature is missing, malformed, untrusted or does not verify
"""

from __future__ import annotations


class CapError(ValueError):
    """Root of every error the CAP library raises."""


class CapParseError(CapError):
    """The input is not a CAP document we accept; says what and where."""

    #: Stable machine-readable cause, used as the ``reason`` label of rejection metrics:
    #: "syntax", "encoding", "nul", "not_cap", "bad_value" (parse) and "doctype", "entity",
    #: "xinclude", "too_large", "too_deep" (hostile).
    reason: str

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        reason: str = "syntax",
    ) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.reason = reason
        where = ""
        if line is not None:
            where = f" (line {line}" + (f", column {column})" if column is not None else ")")
        super().__init__(f"{message}{where}")


class CapHostileError(CapParseError):
    """The input attempted something dangerous and was refused before any expansion."""


class CapValidationError(CapError):
    """A parsed document breaks a rule that prevents its use."""


class CapSignatureError(CapError):
    """A signature could not be accepted; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")
