"""A throw-away PKI and CAP alerts for the signature tests (built once per session)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.signer import XMLSigner

DS = "http://www.w3.org/2000/09/xmldsig#"
CAP = "urn:oasis:names:tc:emergency:cap:1.2"
NS = {"ds": DS, "cap": CAP}

# Validity windows, fixed so that tests never depend on the day they run.
VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
VALID_UNTIL = datetime(2099, 1, 1, tzinfo=UTC)
EXPIRED_FROM = datetime(2015, 1, 1, tzinfo=UTC)
EXPIRED_UNTIL = datetime(2018, 1, 1, tzinfo=UTC)
FUTURE_FROM = datetime(2090, 1, 1, tzinfo=UTC)
FUTURE_UNTIL = datetime(2095, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CA_FROM = datetime(2010, 1, 1, tzinfo=UTC)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Borderlink Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def make_cert(
    *,
    cn: str,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Certificate | None = None,
    ca: bool = False,
    not_before: datetime = VALID_FROM,
    not_after: datetime = VALID_UNTIL,
    digital_signature: bool = True,
) -> x509.Certificate:
    subject = _name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    issuer_public = issuer.public_key() if issuer is not None else public_key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),  # type: ignore[arg-type]
        critical=False,
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )
    else:
        usage = x509.KeyUsage(
            digital_signature=digital_signature, content_commitment=False,
            key_encipherment=not digital_signature, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False,
        )
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    """Keys and certificates for every trust case the tests need."""

    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    signer_key: rsa.RSAPrivateKey
    signer: x509.Certificate  # issued by ca, valid 2020-2099
    expired: x509.Certificate  # signer_key, issued by ca, 2015-2018
    future: x509.Certificate  # signer_key, issued by ca, 2090-2095
    chained: x509.Certificate  # signer_key, issued by the intermediate
    no_digital_signature: x509.Certificate  # signer_key, KeyUsage without digitalSignature
    rogue_key: rsa.RSAPrivateKey
    rogue: x509.Certificate  # self-signed, anchored nowhere
    weak_key: rsa.RSAPrivateKey
    weak: x509.Certificate  # 1024-bit RSA, issued by ca
    ec_key: ec.EllipticCurvePrivateKey
    ec_signer: x509.Certificate  # P-256, issued by ca


def build_pki() -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_cert(cn="Borderlink Test Root CA", public_key=ca_key.public_key(),
                   issuer_key=ca_key, ca=True, not_before=CA_FROM)
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = make_cert(cn="Borderlink Test Issuing CA",
                             public_key=intermediate_key.public_key(), issuer_key=ca_key,
                             issuer=ca, ca=True, not_before=CA_FROM)
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    signer_public = signer_key.public_key()
    return Pki(
        ca_key=ca_key,
        ca=ca,
        intermediate_key=intermediate_key,
        intermediate=intermediate,
        signer_key=signer_key,
        signer=make_cert(cn="alerts.example.ca", public_key=signer_public,
                         issuer_key=ca_key, issuer=ca),
        expired=make_cert(cn="old.example.ca", public_key=signer_public, issuer_key=ca_key,
                          issuer=ca, not_before=EXPIRED_FROM, not_after=EXPIRED_UNTIL),
        future=make_cert(cn="future.example.ca", public_key=signer_public, issuer_key=ca_key,
                         issuer=ca, not_before=FUTURE_FROM, not_after=FUTURE_UNTIL),
        chained=make_cert(cn="chained.example.ca", public_key=signer_public,
                          issuer_key=intermediate_key, issuer=intermediate),
        no_digital_signature=make_cert(cn="tls-only.example.ca", public_key=signer_public,
                                       issuer_key=ca_key, issuer=ca, digital_signature=False),
        rogue_key=rogue_key,
        rogue=make_cert(cn="rogue.example.net", public_key=rogue_key.public_key(),
                        issuer_key=rogue_key),
        weak_key=weak_key,
        weak=make_cert(cn="weak.example.ca", public_key=weak_key.public_key(),
                       issuer_key=ca_key, issuer=ca),
        ec_key=ec_key,
        ec_signer=make_cert(cn="ec.example.ca", public_key=ec_key.public_key(),
                            issuer_key=ca_key, issuer=ca),
    )


ALERT_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>eoc@borderlink.example</sender>
  <sent>2026-06-01T08:00:00-04:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>en-CA</language>
    <category>Met</category>
    <event>tornado</event>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <headline>{headline}</headline>
    <description>A tornado was observed near the river crossing.</description>
    <area>
      <areaDesc>Windsor - Essex</areaDesc>
      <geocode><valueName>profile:CAP-CP:Location:0.3</valueName><value>3537039</value></geocode>
    </area>
  </info>
</alert>
"""


def alert_xml(
    headline: str = "Tornado warning in effect", identifier: str = "BL-2026-0001",
) -> bytes:
    return ALERT_TEMPLATE.format(headline=headline, identifier=identifier).encode("utf-8")


def tree(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def to_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def signatures(root: etree._Element) -> list[etree._Element]:
    return root.findall("ds:Signature", NS)


def first(node: etree._Element, path: str) -> etree._Element:
    """The first element at ``path`` (ds:/cap: prefixes); fails the test when absent."""
    found = node.find(path, NS)
    assert found is not None, f"{path} not found"
    return found


def b64_text(node: etree._Element) -> bytes:
    assert node.text is not None
    return base64.b64decode(node.text)


class Sha1Signer(XMLSigner):
    """signxml refuses to produce SHA-1 signatures; legacy producers still do."""

    def check_deprecated_methods(self) -> None:
        return None
