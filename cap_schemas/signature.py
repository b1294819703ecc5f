"""XML-DSig signatures on CAP alerts: verify against pinned anchors, and sign our own.

CAP 1.2 (§3.3.2.1) carries an *enveloped* W3C XML Signature as the last child(ren) of
``<alert>``. borderlink accepts an alert as signed only when all of this holds:

1. the bytes parse with the hardened parser (:func:`cap_schemas.parse.parse_xml`): no DTD, no
   entities, no XInclude, size and depth caps. The tree handed to signxml is that one; signxml
   never resolves an external reference (a ``Reference`` must be ``URI=""``);
2. the document root is a CAP ``alert`` and no other ``alert`` hides anywhere inside it;
3. every ``Signature`` is a direct child of ``alert``; one at most unless multiple signatures
   are allowed (NAAD relays carry the issuer's and NAADS's own);
4. each signature has exactly one ``Reference``, ``URI=""``, with the enveloped-signature
   transform and nothing but canonicalisation besides;
5. algorithms: SHA-1 only where the source's policy allows it, never HMAC or DSA; RSA keys of
   at least 2048 bits;
6. the ``SignatureValue`` verifies, the digest matches the document as received;
7. the signer is anchored in the source's :class:`TrustStore` (never the system CA store) and
   its certificate is valid at the verification time.

With several signatures, *every* one must verify cryptographically and at least one signer must
be trusted. Each signature is checked over the alert without the other signatures (NAADS and
Environment Canada both sign the bare alert), and, failing that, with them in place as the W3C
enveloped transform reads it (a signature added over an already signed alert).

Only what was signed is passed on: :attr:`SignatureReport.signed_xml` is the canonical form of
the signed alert as signxml returns it (signatures removed). Parse that, not the raw bytes.

Reason codes (stable; used as metric labels): see :class:`Reason`.

Two implementation notes, both found by verifying the real NAAD corpus:

* NAADS puts a space in its signature's ``Id`` (``"NAADS Signature"``), which is not an
  ``xs:ID``: the XML-DSig schema check of signxml is therefore skipped and this module checks
  the structure itself;
* libxml2 2.14 writes a spurious ``xmlns=""`` when canonicalising (inclusive C14N 1.0) an
  element that is not the document root and sits under a default-namespace override, which
  breaks every NAADS ``SignedInfo``. Canonicalisation of a sub-tree is therefore done on a
  detached copy carrying the in-scope namespaces (and inherited ``xml:*`` attributes), which is
  exactly what C14N 1.0 prescribes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import cryptography.exceptions
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidDigest, InvalidSignature, SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from cap_schemas.errors import CapParseError, CapSignatureError
from cap_schemas.model import CAP10_NS, CAP11_NS, CAP12_NS, XMLDSIG_NS
from cap_schemas.parse import ParseLimits, parse_xml
from cap_schemas.signature_trust import (
    TrustDecision,
    TrustStore,
    common_name,
    is_ca,
    key_fingerprint,
)

__all__ = [
    "MAX_SIGNATURES",
    "TRUST_REASONS",
    "Reason",
    "SignatureDetail",
    "SignaturePolicy",
    "SignatureReport",
    "SignatureState",
    "TrustStore",
    "sign",
    "verify",
]

log = structlog.get_logger(__name__)

CAP_NAMESPACES = frozenset({CAP12_NS, CAP11_NS, CAP10_NS})
DS = XMLDSIG_NS
_SIGNATURE = f"{{{DS}}}Signature"
_ENVELOPED = SignatureConstructionMethod.enveloped.value
XML_NS = "http://www.w3.org/XML/1998/namespace"
_DSIG11 = "http://www.w3.org/2009/xmldsig11#"

#: Most signatures examined on one alert (NAAD carries two); more is refused as "multiple".
MAX_SIGNATURES = 4
#: Most certificates read from one signature's KeyInfo.
MAX_CERTIFICATES = 8

SignatureState = Literal["valid", "unsigned", "invalid"]


class Reason(enum.StrEnum):
    """Why a signature report has its state. Values are stable machine-readable codes."""

    VERIFIED = "verified"  # valid: every signature verifies, a trusted signer vouches
    UNSIGNED = "unsigned"  # no Signature element at all
    MALFORMED = "malformed"  # not parseable / hostile XML, not a CAP alert, broken Signature
    MULTIPLE = "multiple"  # more Signature elements than the policy allows
    NOT_ENVELOPED = "not_enveloped"  # not a child of alert, or no enveloped-signature transform
    WRONG_REFERENCE = "wrong_reference"  # Reference URI is not "" (or not exactly one Reference)
    WRAPPING = "wrapping"  # signed content is not the document's alert root
    ALTERED = "altered"  # digest mismatch: the alert changed after signing
    BAD_SIGNATURE = "bad_signature"  # SignatureValue does not verify over SignedInfo
    UNTRUSTED = "untrusted"  # signer not anchored in the source's trust store
    EXPIRED = "expired"  # anchored signer certificate past its validity
    NOT_YET_VALID = "not_yet_valid"  # anchored signer certificate not valid yet
    WEAK_ALGORITHM = "weak_algorithm"  # SHA-1 not allowed here, DSA, short RSA/EC key
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"  # unknown URI, HMAC, foreign transform


# Reasons that concern only who signed (not whether the bytes are intact): a source that does
# not require signatures treats such an alert as unsigned.
TRUST_REASONS = frozenset({Reason.UNTRUSTED, Reason.EXPIRED, Reason.NOT_YET_VALID})


def _fragment(uri: str) -> str:
    return uri.rsplit("#", 1)[-1] if "#" in uri else uri


@dataclass(frozen=True, slots=True)
class SignatureDetail:
    """The outcome for one ``Signature`` element, in document order."""

    index: int
    id: str | None
    reason: str
    message: str
    signer: str | None = None
    trusted: bool = False
    algorithms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignatureReport:
    """What signature verification found.

    ``state`` is ``"valid"`` (trusted and intact), ``"unsigned"`` or ``"invalid"``; ``reason``
    is a :class:`Reason` code and ``message`` says what and where. ``signers`` are the subject
    CNs of the trusted signers that vouch for the alert; ``algorithms`` the signature and
    digest methods seen (e.g. ``("rsa-sha256", "sha256")``); ``signed_xml`` the signed alert
    (canonical XML, signatures removed) when valid; ``count`` the number of ``Signature``
    elements in the document.
    """

    state: SignatureState
    reason: str
    signers: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    signed_xml: bytes | None = None
    count: int = 0
    message: str = ""
    signatures: tuple[SignatureDetail, ...] = field(default=(), repr=False)

    @property
    def trusted(self) -> bool:
        return self.state == "valid"

    def raise_for_state(self) -> None:
        """Raise :class:`CapSignatureError` unless the report is ``"valid"``."""
        if self.state != "valid":
            raise CapSignatureError(self.reason, self.message or self.reason)


# ---------------------------------------------------------------------------------------------
# signxml, corrected for the libxml2 sub-tree canonicalisation fault


def _signxml_parser() -> etree.XMLParser:
    # signxml re-parses copies of the (already vetted) tree; same settings as parse_xml.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
    )


def _detached(node: etree._Element, algorithm: CanonicalizationMethod) -> etree._Element:
    """A copy of ``node`` as the root of its own document, with its in-scope namespaces (lxml
    copies them when serialising a sub-element) and, for inclusive C14N, the ``xml:*``
    attributes it inherits from its ancestors (C14N 1.0 §2.4)."""
    copy = etree.fromstring(etree.tostring(node), _signxml_parser())
    exclusive = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
    if not algorithm.value.startswith(exclusive):
        inherit_all = algorithm.value.startswith(CanonicalizationMethod.CANONICAL_XML_1_0.value)
        for ancestor in node.iterancestors():
            for name, value in ancestor.attrib.items():
                if not str(name).startswith(f"{{{XML_NS}}}") or name in copy.attrib:
                    continue
                # C14N 1.1 inherits xml:lang, xml:space and xml:base, not xml:id. (xml:base is
                # "fixed up" against relative values in between, which no CAP producer uses;
                # a mismatch would fail safe as a bad signature.)
                if inherit_all or str(name).endswith(("}lang", "}space", "}base")):
                    copy.set(name, value)
    return copy


class _C14NFix:
    """Mixin: canonicalise non-root nodes on a detached copy (see the module docstring)."""

    def _c14n(
        self,
        nodes: etree._Element | list[etree._Element],
        algorithm: CanonicalizationMethod,
        inclusive_ns_prefixes: list[str] | None = None,
    ) -> bytes:
        items = nodes if isinstance(nodes, list) else [nodes]
        exclusive = algorithm.value.startswith(
            CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value,
        )
        with_comments = algorithm.value.endswith("#WithComments")
        out = b""
        for node in items:
            target = node if node.getparent() is None else _detached(node, algorithm)
            out += etree.tostring(
                target,
                method="c14n",
                exclusive=exclusive,
                with_comments=with_comments,
                inclusive_ns_prefixes=inclusive_ns_prefixes,
            )
        return out


class _Verifier(_C14NFix, XMLVerifier):
    """An XMLVerifier that checks the ``index``-th ``Signature`` child of the root."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index

    def _get_signature(self, root: etree._Element) -> etree._Element:
        signatures = [child for child in root if child.tag == _SIGNATURE]
        if self._index >= len(signatures):
            msg = "signature disappeared from the copy being verified"
            raise InvalidSignature(msg)
        return signatures[self._index]


class _Signer(_C14NFix, XMLSigner):
    pass


# ---------------------------------------------------------------------------------------------
# verification


class _Fail(Exception):
    """Internal: a signature check failed; never escapes this module."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _path(node: etree._Element) -> str:
    """A short XPath-like location (``/alert/info[1]/Signature``) for messages."""
    parts: list[str] = []
    current: etree._Element | None = node
    while current is not None:
        local = etree.QName(current).localname
        parent = current.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == current.tag]
            if len(same) > 1:
                local += f"[{same.index(current) + 1}]"
        parts.append(local)
        current = parent
    return "/" + "/".join(reversed(parts))


def _is_alert(node: etree._Element) -> bool:
    if not isinstance(node.tag, str):
        return False
    qname = etree.QName(node)
    return qname.localname == "alert" and qname.namespace in CAP_NAMESPACES


def _ds(node: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in node if c.tag == f"{{{DS}}}{name}"]


def _one(node: etree._Element, name: str, where: str) -> etree._Element:
    found = _ds(node, name)
    if len(found) != 1:
        raise _Fail(
            Reason.MALFORMED,
            f"{where}: expected exactly one {name}, found {len(found)}",
        )
    return found[0]


@dataclass(frozen=True, slots=True)
class _Options:
    trust: TrustStore
    now: datetime
    allow_sha1: bool
    min_rsa_bits: int


@dataclass(slots=True)
class _Outcome:
    detail: SignatureDetail
    signed_data: bytes | None = None
    decision: TrustDecision | None = None


def _algorithm_names(signature: etree._Element) -> tuple[str, ...]:
    """Short names of the signature and digest methods a Signature declares (for reports)."""
    names: list[str] = []
    for signed_info in _ds(signature, "SignedInfo"):
        names.extend(_fragment(m.get("Algorithm", "")) for m in _ds(signed_info, "SignatureMethod"))
        for reference in _ds(signed_info, "Reference"):
            names.extend(_fragment(d.get("Algorithm", "")) for d in _ds(reference, "DigestMethod"))
    return tuple(dict.fromkeys(n for n in names if n))


def _check_algorithms(signature: etree._Element, where: str, opts: _Options) -> None:
    signed_info = _one(signature, "SignedInfo", where)
    c14n = _one(signed_info, "CanonicalizationMethod", where).get("Algorithm", "")
    method_uri = _one(signed_info, "SignatureMethod", where).get("Algorithm", "")
    references = _ds(signed_info, "Reference")
    digest_uris = [
        (_ds(r, "DigestMethod") or [etree.Element("x")])[0].get("Algorithm", "")
        for r in references
    ]
    try:
        CanonicalizationMethod(c14n)
    except ValueError:
        raise _Fail(
            Reason.UNSUPPORTED_ALGORITHM, f"{where}: canonicalisation {c14n!r} is not supported",
        ) from None
    try:
        method = SignatureMethod(method_uri)
    except ValueError:
        raise _Fail(
            Reason.UNSUPPORTED_ALGORITHM,
            f"{where}: signature method {method_uri!r} is not supported",
        ) from None
    if method.name.startswith("HMAC_"):
        raise _Fail(
            Reason.UNSUPPORTED_ALGORITHM,
            f"{where}: {_fragment(method_uri)} is a shared-secret MAC, not a signature",
        )
    if method.name.startswith("DSA_"):
        raise _Fail(Reason.WEAK_ALGORITHM, f"{where}: DSA signatures are not accepted")
    if "SHA1" in method.name and not opts.allow_sha1:
        raise _Fail(
            Reason.WEAK_ALGORITHM,
            f"{where}: signature method {_fragment(method_uri)} (SHA-1) is not allowed for "
            "this source (allow_sha1 = false)",
        )
    for uri in digest_uris:
        try:
            digest = DigestAlgorithm(uri)
        except ValueError:
            raise _Fail(
                Reason.UNSUPPORTED_ALGORITHM, f"{where}: digest method {uri!r} is not supported",
            ) from None
        if digest is DigestAlgorithm.SHA1 and not opts.allow_sha1:
            raise _Fail(
                Reason.WEAK_ALGORITHM,
                f"{where}: digest method sha1 is not allowed for this source (allow_sha1 = false)",
            )


def _check_reference(
    root: etree._Element, signature: etree._Element, where: str,
) -> None:
    signed_info = _one(signature, "SignedInfo", where)
    references = _ds(signed_info, "Reference")
    if len(references) != 1:
        raise _Fail(
            Reason.WRONG_REFERENCE,
            f"{where}: expected exactly one Reference (to the whole alert), found "
            f"{len(references)}",
        )
    reference = references[0]
    uri = reference.get("URI")
    if uri is None:
        raise _Fail(Reason.WRONG_REFERENCE, f"{where}: Reference has no URI (must be URI=\"\")")
    if uri != "":
        if uri.startswith("#") and not uri.startswith("#xpointer("):
            target = uri[1:]
            for node in root.iter():
                if not isinstance(node.tag, str):
                    continue
                if any(node.get(a) == target for a in ("Id", "ID", "id")) or (
                    node.get(f"{{{XML_NS}}}id") == target
                ):
                    if node is root:
                        break
                    raise _Fail(
                        Reason.WRAPPING,
                        f"{where}: Reference URI {uri!r} points at {_path(node)}, not at the "
                        "alert as a whole",
                    )
        raise _Fail(
            Reason.WRONG_REFERENCE,
            f"{where}: Reference URI is {uri!r}; a CAP signature must cover the whole alert "
            "(URI=\"\"); nothing is ever fetched",
        )
    transforms_parent = _ds(reference, "Transforms")
    algorithms = [
        t.get("Algorithm", "")
        for parent in transforms_parent
        for t in _ds(parent, "Transform")
    ]
    if _ENVELOPED not in algorithms:
        raise _Fail(
            Reason.NOT_ENVELOPED,
            f"{where}: Reference lacks the enveloped-signature transform",
        )
    for algorithm in algorithms:
        if algorithm == _ENVELOPED:
            continue
        try:
            CanonicalizationMethod(algorithm)
        except ValueError:
            raise _Fail(
                Reason.UNSUPPORTED_ALGORITHM,
                f"{where}: transform {algorithm!r} is not accepted (only enveloped-signature "
                "and canonicalisation)",
            ) from None
    if len(transforms_parent) > 1 or len(algorithms) > 2:
        # Each canonicalisation transform re-serialises the whole alert: a long list is a
        # cheap way to burn CPU on a 5 MB alert. One enveloped + one C14N is all CAP needs.
        raise _Fail(
            Reason.MALFORMED,
            f"{where}: {len(algorithms)} transforms; at most the enveloped-signature transform "
            "and one canonicalisation are accepted",
        )


def _b64(text: str | None, what: str, where: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _Fail(Reason.MALFORMED, f"{where}: {what} is not valid base64") from None


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, content start, content end)`` of the DER item at ``pos``."""
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if not 1 <= size <= 4:
            msg = "unsupported DER length"
            raise ValueError(msg)
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > len(data):
        msg = "truncated DER item"
        raise ValueError(msg)
    return tag, pos, pos + length


def _check_serial(der: bytes) -> None:
    """Refuse a certificate whose serial number is not positive (RFC 5280 §4.1.2.2) before
    cryptography parses it: it warns about such certificates and will soon refuse them."""
    try:
        tag, start, _ = _der_item(der, 0)  # Certificate
        tag_tbs, start, _ = _der_item(der, start)  # TBSCertificate
        if der[start] == 0xA0:  # [0] EXPLICIT version
            _, _, start = _der_item(der, start)
        tag_serial, start, end = _der_item(der, start)
    except IndexError:
        msg = "truncated certificate"
        raise ValueError(msg) from None
    if (tag, tag_tbs, tag_serial) != (0x30, 0x30, 0x02) or start == end:
        msg = "not an X.509 certificate"
        raise ValueError(msg)
    serial = der[start:end]
    if serial[0] & 0x80 or not any(serial):
        msg = "serial number is not positive (RFC 5280)"
        raise ValueError(msg)


_WARNINGS_LOCK = threading.Lock()
# What cryptography raises for certificates it cannot use (several are not ValueErrors).
_CERTIFICATE_ERRORS = (
    ValueError,
    TypeError,
    cryptography.exceptions.UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.InvalidVersion,
    x509.UnsupportedGeneralNameType,
    x509.AttributeNotFound,
)


def _load_certificate(der: bytes) -> x509.Certificate:
    """Load a certificate and read every field used later, so that a corrupt one is refused
    here (cryptography parses lazily). What cryptography only warns about (a country name
    that is not two letters, a negative serial) is refused too: a signer certificate that
    breaks RFC 5280 has no business on an alert."""
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cert = x509.load_der_x509_certificate(der)
        _ = (cert.subject, cert.issuer, cert.extensions, cert.public_key())
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc)
    if caught:
        raise ValueError(str(caught[0].message))
    return cert


def _certificates(signature: etree._Element, where: str) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for key_info in _ds(signature, "KeyInfo"):
        for data in _ds(key_info, "X509Data"):
            for element in _ds(data, "X509Certificate"):
                if len(certs) >= MAX_CERTIFICATES:
                    raise _Fail(
                        Reason.MALFORMED,
                        f"{where}: more than {MAX_CERTIFICATES} certificates in KeyInfo",
                    )
                der = _b64(element.text, "X509Certificate", where)
                try:
                    _check_serial(der)
                    certs.append(_load_certificate(der))
                except _CERTIFICATE_ERRORS as exc:
                    raise _Fail(
                        Reason.MALFORMED, f"{where}: X509Certificate is unreadable: {exc}",
                    ) from None
    return certs


def _leaf_first(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Candidate signing certificates: those that issued none of the others come first."""
    issuers = {c.issuer for c in certs}

    def issues_another(cert: x509.Certificate) -> bool:
        return cert.subject in issuers and any(
            o is not cert and o.issuer == cert.subject for o in certs
        )

    return sorted(certs, key=issues_another)


def _check_key_strength(key: PublicKeyTypes, where: str, opts: _Options) -> None:
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < opts.min_rsa_bits:
        raise _Fail(
            Reason.WEAK_ALGORITHM,
            f"{where}: RSA key of {key.key_size} bits (at least {opts.min_rsa_bits} required)",
        )
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        raise _Fail(
            Reason.WEAK_ALGORITHM,
            f"{where}: elliptic curve {key.curve.name} is too small (at least 256 bits)",
        )


def _without_other_signatures(root: etree._Element, keep: int) -> etree._Element:
    """A copy of the document with every direct Signature child but the ``keep``-th removed
    (their tails kept, as the enveloped transform does)."""
    copy = etree.fromstring(etree.tostring(root), _signxml_parser())
    for position, child in enumerate([c for c in copy if c.tag == _SIGNATURE]):
        if position == keep:
            continue
        _remove_keeping_tail(child)
    return copy


def _remove_keeping_tail(node: etree._Element) -> None:
    parent = node.getparent()
    assert parent is not None
    if node.tail:
        previous = node.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + node.tail
        else:
            parent.text = (parent.text or "") + node.tail
    parent.remove(node)


_CRYPTO_ERRORS = (
    *_CERTIFICATE_ERRORS,
    SignXMLException,
    cryptography.exceptions.InvalidSignature,
    cryptography.exceptions.UnsupportedAlgorithm,
    etree.LxmlError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
)


_METHODS_WITH_SHA1 = frozenset(
    m for m in SignatureMethod if not m.name.startswith(("HMAC_", "DSA_"))
)
_METHODS = frozenset(m for m in _METHODS_WITH_SHA1 if "SHA1" not in m.name)
_DIGESTS_WITH_SHA1 = frozenset(DigestAlgorithm)
_DIGESTS = frozenset(d for d in DigestAlgorithm if d is not DigestAlgorithm.SHA1)
_ALERT_TAGS = tuple(f"{{{ns}}}alert" for ns in sorted(CAP_NAMESPACES))


def _nested_alert(root: etree._Element) -> etree._Element | None:
    """The first CAP alert element below ``root`` (not ``root`` itself), if any."""
    return next((n for n in root.iter(*_ALERT_TAGS) if n is not root), None)


def _run_signxml(
    document: etree._Element,
    index: int,
    cert: x509.Certificate | None,
    opts: _Options,
    where: str,
) -> bytes:
    """Verify the ``index``-th signature of ``document`` cryptographically; the signed bytes."""
    methods = _METHODS_WITH_SHA1 if opts.allow_sha1 else _METHODS
    digests = _DIGESTS_WITH_SHA1 if opts.allow_sha1 else _DIGESTS
    when = opts.now
    if cert is not None:
        # Time is judged by the trust step; here only the mathematics.
        when = min(max(when, cert.not_valid_before_utc), cert.not_valid_after_utc)
    config = SignatureConfiguration(
        require_x509=cert is not None,
        location="./",
        expect_references=1,
        signature_methods=methods,
        digest_algorithms=digests,
        verification_time=when,
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    inherited = {k: v for k, v in document.attrib.items() if str(k).startswith(f"{{{XML_NS}}}")}
    if inherited:
        # signxml canonicalises SignedInfo from a copy of the Signature alone, which loses the
        # xml:* attributes inclusive C14N inherits from alert: put them on that Signature (it
        # is removed by the enveloped transform, so the digest is unaffected).
        document = etree.fromstring(etree.tostring(document), _signxml_parser())
        target = [c for c in document if c.tag == _SIGNATURE][index]
        for name, value in inherited.items():
            if name not in target.attrib:
                target.set(name, value)
    verifier = _Verifier(index)
    try:
        result = verifier.verify(
            document,
            x509_cert=cert,
            expect_config=config,
            validate_schema=False,
            parser=_signxml_parser(),
        )
    except InvalidDigest as exc:
        raise _Fail(
            Reason.ALTERED,
            f"{where}: the alert was changed after it was signed (digest mismatch)",
        ) from exc
    except InvalidSignature as exc:
        raise _Fail(
            Reason.BAD_SIGNATURE,
            f"{where}: SignatureValue does not verify with the signer's key",
        ) from exc
    except _CRYPTO_ERRORS as exc:
        raise _Fail(Reason.MALFORMED, f"{where}: signature cannot be processed: {exc}") from exc
    if not isinstance(result, VerifyResult):
        raise _Fail(Reason.WRONG_REFERENCE, f"{where}: expected exactly one Reference")
    signed_xml = result.signed_xml
    if signed_xml is None or not _is_alert(signed_xml):
        raise _Fail(Reason.WRAPPING, f"{where}: the signed content is not the alert element")
    data: bytes = result.signed_data
    return data


def _blank_stripped(document: etree._Element) -> etree._Element:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        collect_ids=False, remove_blank_text=True,
    )
    return etree.fromstring(etree.tostring(document), parser)


def _candidates(
    signature: etree._Element, certs: list[x509.Certificate], opts: _Options, where: str,
) -> list[x509.Certificate | None]:
    """Keys to try: the carried certificates (leaf first); without any, the KeyValue (None)
    and the pinned signers, the signature value deciding which key signed."""
    if certs:
        # A CA certificate cannot be the signer: with a chain carried, only end entities are
        # tried (each attempt costs a pass over the alert, which may be 5 MB).
        ordered = _leaf_first(certs)
        return list([c for c in ordered if not is_ca(c)] or ordered)
    candidates: list[x509.Certificate | None] = [None] if _has_key_value(signature) else []
    candidates.extend(opts.trust.signers)
    if not candidates:
        raise _Fail(
            Reason.UNTRUSTED,
            f"{where}: the signature carries no certificate or key, and no signer is pinned "
            "for this source",
        )
    return candidates


def _final_failure(
    failure: _Fail | None, signature: etree._Element, certs: list[x509.Certificate], where: str,
) -> _Fail:
    assert failure is not None
    if not certs and not _has_key_value(signature) and failure.reason is Reason.BAD_SIGNATURE:
        return _Fail(
            Reason.UNTRUSTED,
            f"{where}: the signature carries no certificate or key, and no pinned signer's key "
            "verifies it",
        )
    return failure


def _verify_one(
    root: etree._Element, signature: etree._Element, index: int, total: int, opts: _Options,
) -> _Outcome:
    where = _path(signature) if total == 1 else f"{_path(signature)} (Id={signature.get('Id')!r})"
    sig_id = signature.get("Id")
    algorithms = _algorithm_names(signature)
    signer: str | None = None
    try:
        _check_algorithms(signature, where, opts)
        _check_reference(root, signature, where)
        _b64(_one(signature, "SignatureValue", where).text, "SignatureValue", where)
        _check_key_value_sizes(signature, where)
        certs = _certificates(signature, where)
        signer = common_name(_leaf_first(certs)[0]) if certs else None
        candidates = _candidates(signature, certs, opts, where)
        failure: _Fail | None = None
        failed_with: x509.Certificate | None = None
        for cert in candidates[:MAX_CERTIFICATES]:
            try:
                signed = _verify_modes(
                    root, index=index, total=total, cert=cert, opts=opts, where=where,
                )
            except _Fail as exc:
                if failure is None or (
                    failure.reason is Reason.BAD_SIGNATURE
                    and exc.reason is not Reason.BAD_SIGNATURE
                ):
                    failure, failed_with = exc, cert
                continue
            return _trust(
                signature, index=index, sig_id=sig_id, certs=certs, cert=cert,
                signed=signed, algorithms=algorithms, opts=opts, where=where,
            )
        failure = _final_failure(failure, signature, certs, where)
        if (
            total == 1
            and failure.reason in (Reason.ALTERED, Reason.BAD_SIGNATURE)
            and _reformatted(root, failed_with, opts, where)
        ):
            failure = _Fail(
                failure.reason,
                failure.message + "; it would verify with the white space between elements "
                "removed: the document was re-indented after signing",
            )
        raise failure
    except _Fail as exc:
        return _Outcome(
            SignatureDetail(index, sig_id, exc.reason, exc.message, signer, False, algorithms),
        )
    except _CRYPTO_ERRORS as exc:
        # Defence in depth: whatever a library raises on hostile input is a malformed signature.
        return _Outcome(
            SignatureDetail(
                index, sig_id, Reason.MALFORMED, f"{where}: signature cannot be processed: {exc}",
                signer, False, algorithms,
            ),
        )


def _verify_modes(
    root: etree._Element,
    *,
    index: int,
    total: int,
    cert: x509.Certificate | None,
    opts: _Options,
    where: str,
) -> bytes:
    """Verify over the alert without the other signatures, then as the W3C transform reads it."""
    if total == 1:
        return _run_signxml(root, 0, cert, opts, where)
    try:
        return _run_signxml(_without_other_signatures(root, index), 0, cert, opts, where)
    except _Fail as first:
        if first.reason is not Reason.ALTERED:
            raise
        try:
            return _run_signxml(root, index, cert, opts, where)
        except _Fail:
            raise first from None


def _reformatted(
    root: etree._Element, cert: x509.Certificate | None, opts: _Options, where: str,
) -> bool:
    """Diagnostic only: would the signature hold if indentation were removed?"""
    try:
        _run_signxml(_blank_stripped(root), 0, cert, opts, where)
    except _Fail:
        return False
    return True


# signxml turns KeyValue numbers into integers four bytes at a time (quadratic): a 200 KB
# modulus costs seconds. RSA moduli beyond 16384 bits are refused by OpenSSL anyway.
_KEY_VALUE_LIMITS = {"Modulus": 16384 // 8, "Exponent": 8, "PublicKey": 1 + 2 * 66}


def _check_key_value_sizes(signature: etree._Element, where: str) -> None:
    for key_info in _ds(signature, "KeyInfo"):
        for node in key_info.iter():
            if not isinstance(node.tag, str):
                continue
            limit = _KEY_VALUE_LIMITS.get(etree.QName(node).localname)
            if limit is None:
                continue
            text = "".join((node.text or "").split())
            if len(text) * 3 // 4 > limit + 2:
                raise _Fail(
                    Reason.MALFORMED,
                    f"{where}: KeyValue {etree.QName(node).localname} of about "
                    f"{len(text) * 3 // 4} bytes exceeds {limit} bytes",
                )


def _has_key_value(signature: etree._Element) -> bool:
    return any(
        _ds(key_info, "KeyValue")
        or key_info.find(f"{{{_DSIG11}}}DEREncodedKeyValue") is not None
        for key_info in _ds(signature, "KeyInfo")
    )


def _key_of(signature: etree._Element) -> PublicKeyTypes | None:
    """The public key a KeyValue-only signature was verified with (signxml reads the same)."""
    for key_info in _ds(signature, "KeyInfo"):
        der_value = key_info.find(f"{{{_DSIG11}}}DEREncodedKeyValue")
        if der_value is not None:
            try:
                return serialization.load_der_public_key(
                    _b64(der_value.text, "DEREncodedKeyValue", "KeyInfo"),
                )
            except (ValueError, cryptography.exceptions.UnsupportedAlgorithm):
                return None
        for key_value in _ds(key_info, "KeyValue"):
            for rsa_value in _ds(key_value, "RSAKeyValue"):
                modulus = _ds(rsa_value, "Modulus")
                exponent = _ds(rsa_value, "Exponent")
                if modulus and exponent:
                    n = int.from_bytes(_b64(modulus[0].text, "Modulus", "KeyValue"), "big")
                    e = int.from_bytes(_b64(exponent[0].text, "Exponent", "KeyValue"), "big")
                    try:
                        return rsa.RSAPublicNumbers(e, n).public_key()
                    except ValueError:
                        return None
    return None


def _trust(
    signature: etree._Element,
    *,
    index: int,
    sig_id: str | None,
    certs: list[x509.Certificate],
    cert: x509.Certificate | None,
    signed: bytes,
    algorithms: tuple[str, ...],
    opts: _Options,
    where: str,
) -> _Outcome:
    if cert is not None:
        _check_key_strength(cert.public_key(), where, opts)
        intermediates = [c for c in certs if c is not cert]
        decision = opts.trust.decide(cert, intermediates, opts.now)
        reason = Reason.VERIFIED if decision.trusted else Reason(decision.reason)
        message = decision.message if decision.trusted else f"{where}: {decision.message}"
        return _Outcome(
            SignatureDetail(
                index, sig_id, reason, message, decision.signer, decision.trusted, algorithms,
            ),
            signed,
            decision,
        )
    key = _key_of(signature)
    if key is None:
        return _Outcome(
            SignatureDetail(
                index, sig_id, Reason.UNTRUSTED,
                f"{where}: the signature carries no certificate and no key that is pinned",
                None, False, algorithms,
            ),
            signed,
        )
    _check_key_strength(key, where, opts)
    name = key_fingerprint(key)
    pinned_cert = opts.trust.signer_for_key(key)
    if pinned_cert is not None:
        decision = opts.trust.decide(pinned_cert, [], opts.now)
        reason = Reason.VERIFIED if decision.trusted else Reason(decision.reason)
        return _Outcome(
            SignatureDetail(
                index, sig_id, reason, decision.message, decision.signer, decision.trusted,
                algorithms,
            ),
            signed,
            decision,
        )
    if opts.trust.pinned_key(key):
        decision = TrustDecision(True, "", f"signer key {name} is pinned", name, name)
        return _Outcome(
            SignatureDetail(
                index, sig_id, Reason.VERIFIED, decision.message, name, True, algorithms,
            ),
            signed,
            decision,
        )
    return _Outcome(
        SignatureDetail(
            index, sig_id, Reason.UNTRUSTED,
            f"{where}: signer key {name} (KeyValue, no certificate) is not pinned for this source",
            name, False, algorithms,
        ),
        signed,
    )


def _strip_signatures(signed: bytes) -> bytes:
    """The signed alert without Signature children (present when a signature covered another)."""
    root = etree.fromstring(signed, _signxml_parser())
    found = [c for c in root if c.tag == _SIGNATURE]
    if not found:
        return signed
    for child in found:
        _remove_keeping_tail(child)
    return etree.tostring(root, method="c14n")


def _invalid(reason: Reason, message: str, count: int, **extra: Any) -> SignatureReport:
    return SignatureReport("invalid", str(reason), count=count, message=message, **extra)


def verify(
    raw: bytes,
    trust: TrustStore,
    *,
    now: datetime | None = None,
    allow_multiple: bool = False,
    allow_sha1: bool = False,
    min_rsa_bits: int = 2048,
    limits: ParseLimits | None = None,
) -> SignatureReport:
    """Verify the enveloped XML signature(s) of a CAP alert against pinned ``trust``.

    Never raises for bad input: every problem is a report with ``state="invalid"`` and a
    :class:`Reason`. ``now`` (timezone-aware, default the current time) is the time at which
    certificates must be valid.
    """
    when = now if now is not None else datetime.now(UTC)
    if when.tzinfo is None:
        msg = "verification time must be timezone-aware"
        raise ValueError(msg)
    when = when.astimezone(UTC)
    try:
        root = parse_xml(raw, limits=limits) if limits is not None else parse_xml(raw)
    except CapParseError as exc:
        return _invalid(Reason.MALFORMED, f"document refused: {exc}", 0)
    everywhere = list(root.iter(_SIGNATURE))
    count = len(everywhere)
    if not _is_alert(root):
        nested = _nested_alert(root)
        if nested is not None:
            return _invalid(
                Reason.WRAPPING,
                f"the document root is {etree.QName(root).localname!r}; an alert is nested at "
                f"{_path(nested)}",
                count,
            )
        return _invalid(
            Reason.MALFORMED,
            f"the document root is {root.tag!r}, not a CAP alert", count,
        )
    if count == 0:
        return SignatureReport("unsigned", str(Reason.UNSIGNED), count=0, message="no Signature")
    nested = _nested_alert(root)
    if nested is not None:
        return _invalid(
            Reason.WRAPPING, f"a second alert element is hidden at {_path(nested)}", count,
        )
    direct = [c for c in root if c.tag == _SIGNATURE]
    misplaced = [s for s in everywhere if s.getparent() is not root]
    if misplaced:
        return _invalid(
            Reason.NOT_ENVELOPED,
            f"Signature at {_path(misplaced[0])} is not a direct child of alert",
            count,
        )
    limit = MAX_SIGNATURES if allow_multiple else 1
    if len(direct) > limit:
        return _invalid(
            Reason.MULTIPLE,
            f"{len(direct)} Signature elements; this source accepts at most {limit}",
            count,
        )
    opts = _Options(trust, when, allow_sha1, min_rsa_bits)
    outcomes = [_verify_one(root, s, i, len(direct), opts) for i, s in enumerate(direct)]
    details = tuple(o.detail for o in outcomes)
    algorithms = tuple(dict.fromkeys(a for d in details for a in d.algorithms))
    # 1. Every signature must be intact (the bytes are what was signed).
    for outcome in outcomes:
        if outcome.signed_data is None:
            return _invalid(
                Reason(outcome.detail.reason), outcome.detail.message, count,
                algorithms=algorithms, signatures=details,
            )
    # 2. At least one trusted, currently valid signer must vouch for it.
    trusted = [o for o in outcomes if o.detail.trusted]
    if not trusted:
        time_failure = next(
            (
                o.detail
                for o in outcomes
                if o.detail.reason in (Reason.EXPIRED, Reason.NOT_YET_VALID)
            ),
            None,
        )
        first = time_failure or outcomes[0].detail
        return _invalid(
            Reason(first.reason), first.message, count,
            algorithms=algorithms, signatures=details,
        )
    signed = trusted[0].signed_data
    assert signed is not None
    return SignatureReport(
        "valid",
        str(Reason.VERIFIED),
        signers=tuple(o.detail.signer or "" for o in trusted),
        algorithms=algorithms,
        signed_xml=_strip_signatures(signed),
        count=count,
        message="; ".join(o.detail.message for o in trusted),
        signatures=details,
    )


# ---------------------------------------------------------------------------------------------
# policy per source


def _bool_option(options: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        msg = f"option {key!r} must be true or false, got {value!r}"
        raise ValueError(msg)  # noqa: TRY004 - a configuration value error, not a type error in code
    return value


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """What one source demands of signatures, and the anchors it trusts.

    ``check`` returns the :func:`verify` report, adjusted to the policy: when signatures are
    not required, an alert whose signature is intact but whose signer is not anchored (or out
    of date) is reported ``"unsigned"`` (it may be relayed as any unsigned alert would, never
    automatically to public outputs); a broken or tampered signature stays ``"invalid"``.
    When signatures are required, an unsigned alert is ``"invalid"`` with reason
    ``"unsigned"``.
    """

    require: bool = True
    trust: TrustStore = field(default_factory=TrustStore.empty)
    allow_multiple: bool = False
    allow_sha1: bool = False
    min_rsa_bits: int = 2048
    limits: ParseLimits | None = None

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        base_dir: str | Path | None = None,
        allow_multiple: bool = False,
    ) -> SignaturePolicy:
        """Build from a source's config table: ``trust_anchors`` (list of PEM paths, relative
        to ``base_dir``), ``require_signature``, ``allow_sha1``, ``allow_multiple_signatures``
        (default ``allow_multiple``, which an adapter sets: NAAD alerts carry two).

        Raises :class:`ValueError` naming the key.
        """
        anchors = options.get("trust_anchors", [])
        if isinstance(anchors, str) or not isinstance(anchors, Sequence):
            msg = f"option 'trust_anchors' must be a list of PEM file paths, got {anchors!r}"
            raise ValueError(msg)  # noqa: TRY004 - a configuration value error
        base = Path(base_dir) if base_dir is not None else None
        paths: list[Path] = []
        for entry in anchors:
            if not isinstance(entry, str) or not entry:
                msg = f"option 'trust_anchors' entries must be file paths, got {entry!r}"
                raise ValueError(msg)
            path = Path(entry)
            paths.append(base / path if base is not None and not path.is_absolute() else path)
        trust = TrustStore.from_pem_files(paths) if paths else TrustStore.empty()
        require = _bool_option(options, "require_signature", default=bool(paths))
        if require and trust.is_empty:
            msg = "option 'require_signature' is true but 'trust_anchors' pins nothing"
            raise ValueError(msg)
        return cls(
            require=require,
            trust=trust,
            allow_multiple=_bool_option(
                options, "allow_multiple_signatures", default=allow_multiple,
            ),
            allow_sha1=_bool_option(options, "allow_sha1", default=False),
        )

    def check(self, raw: bytes, now: datetime | None = None) -> SignatureReport:
        report = verify(
            raw,
            self.trust,
            now=now,
            allow_multiple=self.allow_multiple,
            allow_sha1=self.allow_sha1,
            min_rsa_bits=self.min_rsa_bits,
            limits=self.limits,
        )
        if report.state == "valid" and any("sha1" in a for a in report.algorithms):
            log.warning(
                "signature_sha1_accepted",
                signers=list(report.signers),
                algorithms=list(report.algorithms),
            )
        if report.state == "unsigned" and self.require:
            return SignatureReport(
                "invalid", report.reason, count=0,
                message="this source requires a signature and the alert has none",
            )
        if report.state == "invalid" and not self.require and report.reason in TRUST_REASONS:
            return SignatureReport(
                "unsigned", report.reason, algorithms=report.algorithms, count=report.count,
                message=f"signature not anchored, alert treated as unsigned: {report.message}",
                signatures=report.signatures,
            )
        return report


# ---------------------------------------------------------------------------------------------
# signing


@functools.lru_cache(maxsize=8)
def _signing_material(
    key_pem: bytes, cert_pem: bytes, password: bytes | None,
) -> tuple[PrivateKeyTypes, tuple[x509.Certificate, ...]]:
    # Loading an RSA private key validates it (tens of milliseconds): done once per key.
    key = serialization.load_pem_private_key(key_pem, password=password)
    return key, tuple(x509.load_pem_x509_certificates(cert_pem))


def sign(
    xml: bytes,
    *,
    key_pem: bytes,
    cert_pem: bytes,
    password: bytes | None = None,
) -> bytes:
    """Sign a CAP alert: an enveloped signature appended as the last child of ``alert``.

    RSA keys sign with rsa-sha256, EC keys with ecdsa-sha256; digest sha256, exclusive C14N,
    ``Reference URI=""``. ``cert_pem`` holds the signer certificate, optionally followed by
    its intermediates (all go into ``X509Data``). Returns UTF-8 XML with a declaration.
    Raises :class:`CapSignatureError` (reason ``"malformed"`` or ``"unsupported_algorithm"``)
    and :class:`CapParseError` for input that is not well-formed.
    """
    root = parse_xml(xml)
    if not _is_alert(root):
        raise CapSignatureError("malformed", f"the document root is {root.tag!r}, not a CAP alert")
    if any(root.get(name) is not None for name in ("Id", "ID", "id")):
        raise CapSignatureError(
            "malformed", "the alert element carries an Id attribute; CAP alerts have none",
        )
    if any(s.get("Id") == "placeholder" for s in root.iter(_SIGNATURE)):
        raise CapSignatureError("malformed", "the alert holds a signature placeholder")
    try:
        key, chain = _signing_material(bytes(key_pem), bytes(cert_pem), password)
    except (ValueError, TypeError, cryptography.exceptions.UnsupportedAlgorithm) as exc:
        raise CapSignatureError(
            "malformed", f"signing key or certificate unreadable: {exc}",
        ) from exc
    if isinstance(key, rsa.RSAPrivateKey):
        method = SignatureMethod.RSA_SHA256
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        method = SignatureMethod.ECDSA_SHA256
    else:
        raise CapSignatureError(
            "unsupported_algorithm", f"{type(key).__name__} keys cannot sign CAP alerts here",
        )
    if chain[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    ):
        raise CapSignatureError(
            "malformed",
            f"the first certificate ({common_name(chain[0])!r}) does not belong to the key",
        )
    signer = _Signer(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signer._parser = _signxml_parser()  # type: ignore[assignment]  # signxml's None default
    try:
        signed = signer.sign(root, key=key, cert=list(chain))
    except SignXMLException as exc:
        raise CapSignatureError("malformed", f"signing failed: {exc}") from exc
    out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return out
