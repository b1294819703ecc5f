"""Cross-feed pairs: one message as two paths write it, built by editing its bytes.

* An NWS warning as IPAWS-OPEN writes it (identifier ``NWS-IDP-PROD-<product>-<segment>``,
  the ``gov.fema.ipaws.services`` namespaces on ``<alert>``, the AWIPS id in ``PIL``) and as
  api.weather.gov writes it (identifier ``urn:oid:2.49.0.1.840.0.<40 hex>.<segment>.1``,
  ``AWIPSidentifier``): :func:`api_weather_gov_form` and :func:`ipaws_form`. References are
  rewritten the same way, so each path's update names that path's copies.
* An ECCC alert and a relay of it under the relay's own sender and identifier, referencing
  ECCC's: :func:`relay_form`.

Everything else is left byte for byte as written.
"""

from __future__ import annotations

import hashlib
import re

_IPAWS_NAMESPACES = (
    b' xmlns:ns2="http://gov.fema.ipaws.services/caprequest"',
    b' xmlns:ns4="http://gov.fema.ipaws.services/IPAWS_CAPService/"',
    b' xmlns:ns3="http://gov.fema.ipaws.services/capresponse"',
)
_IDENTIFIER = re.compile(rb"(<identifier>)\s*([^<]+?)\s*(</identifier>)")
_SENDER = re.compile(rb"(<sender>)\s*([^<]+?)\s*(</sender>)")
_SENT = re.compile(rb"(<sent>)\s*([^<]+?)\s*(</sent>)")
_REFERENCES = re.compile(rb"(<references>)([^<]*)(</references>)|<references\s*/>")
_ROOT = re.compile(rb"<alert\b[^>]*>")


def api_identifier(ipaws_identifier: str) -> str:
    """The api.weather.gov identifier standing for an IPAWS-OPEN one (a stable digest)."""
    digest = hashlib.sha1(ipaws_identifier.encode(), usedforsecurity=False).hexdigest()
    return f"urn:oid:2.49.0.1.840.0.{digest}.001.1"


def ipaws_identifier(api_id: str) -> str:
    """The IPAWS-OPEN identifier standing for an api.weather.gov one (a stable number)."""
    number = int(hashlib.sha256(api_id.encode()).hexdigest()[:12], 16)
    return f"NWS-IDP-PROD-{number % 10_000_000}-{number // 10_000_000 % 10_000_000}"


def _rename(raw: bytes, rename: object) -> bytes:
    assert callable(rename)

    def one(match: re.Match[bytes]) -> bytes:
        return match.group(1) + rename(match.group(2).decode()).encode() + match.group(3)

    def refs(match: re.Match[bytes]) -> bytes:
        if match.group(1) is None:
            return match.group(0)
        triples = []
        for triple in match.group(2).decode().split():
            sender, identifier, sent = triple.split(",")
            triples.append(f"{sender},{rename(identifier)},{sent}")
        return match.group(1) + " ".join(triples).encode() + match.group(3)

    return _REFERENCES.sub(refs, _IDENTIFIER.sub(one, raw, count=1))


def api_weather_gov_form(ipaws_raw: bytes) -> bytes:
    """The api.weather.gov CAP of an NWS alert delivered by IPAWS-OPEN."""
    out = _rename(ipaws_raw, api_identifier)
    root = _ROOT.search(out)
    assert root is not None
    tag = root.group(0)
    for ns in _IPAWS_NAMESPACES:
        tag = tag.replace(ns, b"")
    out = out[: root.start()] + tag + out[root.end() :]
    pil = re.search(rb"<valueName>PIL</valueName>(\s*)<value>[A-Z]{3}([A-Z0-9]{3,6})</value>", out)
    if pil is not None:
        out = out.replace(
            pil.group(0),
            b"<valueName>AWIPSidentifier</valueName>"
            + pil.group(1)
            + b"<value>"
            + pil.group(2)
            + b"</value>",
        )
    return out


def ipaws_form(api_raw: bytes) -> bytes:
    """The IPAWS-OPEN CAP of an NWS alert published on api.weather.gov."""
    out = _rename(api_raw, ipaws_identifier)
    root = _ROOT.search(out)
    assert root is not None
    tag = root.group(0)
    tag = tag[:-1] + b"".join(_IPAWS_NAMESPACES) + b">"
    return out[: root.start()] + tag + out[root.end() :]


def relay_form(raw: bytes, *, sender: str, identifier: str, sent: str) -> bytes:
    """A relay of ``raw`` under its own sender, identifier and time, referencing it."""
    original = ",".join(
        m.group(2).decode()
        for m in (_SENDER.search(raw), _IDENTIFIER.search(raw), _SENT.search(raw))
        if m is not None
    )
    out = _IDENTIFIER.sub(lambda m: m.group(1) + identifier.encode() + m.group(3), raw, count=1)
    out = _SENDER.sub(lambda m: m.group(1) + sender.encode() + m.group(3), out, count=1)
    out = _SENT.sub(lambda m: m.group(1) + sent.encode() + m.group(3), out, count=1)
    refs = b"<references>" + original.encode() + b"</references>"
    if _REFERENCES.search(out):
        return _REFERENCES.sub(lambda _m: refs, out, count=1)
    return out.replace(b"<info>", refs + b"\n    <info>", 1)
