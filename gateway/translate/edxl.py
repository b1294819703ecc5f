"""CAP <-> EDXL-DE: the renderer's envelope and the unwrap used by sources.

``cap_to_edxl`` embeds the alert's own bytes (its signatures stay valid) in an EDXL-DE 1.0 or
2.0 envelope whose ID is derived from the alert key (the same alert always gets the same
distribution ID), status and kind follow the alert (Draft travels as Test, Alert as Report),
and, for 2.0, ``dateTimeExpires`` is the alert's expiry (else sent + ``default_hours``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from cap_schemas.edxl import unwrap_alerts, validate_edxl, wrap
from cap_schemas.model import Alert, MsgType, Status
from cap_schemas.serialize import to_xml
from gateway.errors import TranslationError

__all__ = ["cap_to_edxl", "edxl_to_alerts"]

_KIND = {
    MsgType.ALERT: "Report",
    MsgType.UPDATE: "Update",
    MsgType.CANCEL: "Cancel",
    MsgType.ACK: "Ack",
    MsgType.ERROR: "Error",
}


def cap_to_edxl(
    alert: Alert,
    *,
    version: str = "2.0",
    sender_id: str | None = None,
    default_hours: int = 24,
) -> bytes:
    if version not in ("1.0", "2.0"):
        msg = f"EDXL-DE version {version!r} is not 1.0 or 2.0"
        raise TranslationError(msg)
    status = "Test" if alert.status is Status.DRAFT else str(alert.status)
    expires = alert.expires or alert.sent + timedelta(hours=default_hours)
    language = alert.infos[0].language if alert.infos else None
    data = wrap(
        [alert.raw or to_xml(alert)],
        version=version,
        distribution_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"cap:{alert.key}")),
        sender_id=sender_id or alert.sender,
        sent=alert.sent,
        status=status,
        kind=_KIND[alert.msg_type],
        expires=expires,
        language=language,
        description="CAP alert",
    )
    findings = validate_edxl(data)
    if findings:
        msg = f"EDXL-DE {version} envelope breaks its schema: {findings[0]}"
        raise TranslationError(msg)
    return data


def edxl_to_alerts(data: bytes) -> list[Alert]:
    """Every CAP alert in an EDXL-DE 1.0 or 2.0 envelope."""
    return unwrap_alerts(data)
