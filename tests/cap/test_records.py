"""The library's frozen records (the CAP model's blocks and the validation findings) behave
as the dataclasses they are, whether their module runs compiled or from its source: built
from their fields in order (positionally or by name) with the fields' defaults, frozen, and
equal to themselves after pickling, copying and ``dataclasses.replace``, every field kept
(also those left out of equality: the raw bytes, the version, the signature count).

The classes write their ``__init__`` out (a compiled build then constructs them natively)
and share :class:`cap_schemas.model.FrozenRecord` for pickling; these tests hold both to the
dataclass fields.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import sys
from typing import Any

import pytest

from cap_schemas.model import (
    Alert,
    AlertKey,
    Area,
    Circle,
    FrozenRecord,
    Info,
    Resource,
    ValuePair,
)
from cap_schemas.parse import parse_alert
from cap_schemas.rules import ERROR, Finding

# Every field of the model set, in a document of our own: CAP 1.1 (the version differs from
# the default), a signature element (counted, not checked), a reference, both blocks of a
# bilingual alert, a resource with embedded content, a polygon, a circle, geocodes, altitude
# and ceiling.
DOCUMENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1">
  <identifier>records-1</identifier>
  <sender>records@example.org</sender>
  <sent>2026-03-01T10:00:00-05:00</sent>
  <status>Exercise</status>
  <msgType>Update</msgType>
  <source>drill</source>
  <scope>Restricted</scope>
  <restriction>EOC staff</restriction>
  <addresses>eoc-north</addresses>
  <code>profile:CAP-CP:0.4</code>
  <note>a note</note>
  <references>records@example.org,records-0,2026-03-01T09:00:00-05:00</references>
  <incidents>drill-7</incidents>
  <info>
    <language>en-CA</language>
    <category>Met</category>
    <category>Safety</category>
    <event>storm</event>
    <responseType>Shelter</responseType>
    <urgency>Expected</urgency>
    <severity>Moderate</severity>
    <certainty>Possible</certainty>
    <audience>public</audience>
    <eventCode><valueName>profile:CAP-CP:Event:0.4</valueName><value>storm</value></eventCode>
    <effective>2026-03-01T10:00:00-05:00</effective>
    <onset>2026-03-01T11:00:00-05:00</onset>
    <expires>2026-03-01T18:00:00-05:00</expires>
    <senderName>Records Office</senderName>
    <headline>storm drill</headline>
    <description>A drill.</description>
    <instruction>Take part.</instruction>
    <web>https://example.org/drill</web>
    <contact>records@example.org</contact>
    <parameter><valueName>layer:SOREM:1.0:Broadcast_Immediately</valueName><value>No</value></parameter>
    <resource>
      <resourceDesc>notice</resourceDesc>
      <mimeType>text/plain</mimeType>
      <size>5</size>
      <uri>notice.txt</uri>
      <derefUri>aGVsbG8=</derefUri>
      <digest>aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d</digest>
    </resource>
    <area>
      <areaDesc>north</areaDesc>
      <polygon>45.5,-75.9 45.6,-75.5 45.3,-75.4 45.5,-75.9</polygon>
      <circle>45.4,-75.7 10</circle>
      <geocode><valueName>profile:CAP-CP:Location:0.3</valueName><value>3506008</value></geocode>
      <altitude>100</altitude>
      <ceiling>900</ceiling>
    </area>
  </info>
  <info>
    <language>fr-CA</language>
    <category>Met</category>
    <event>orage</event>
    <urgency>Expected</urgency>
    <severity>Moderate</severity>
    <certainty>Possible</certainty>
    <area><areaDesc>nord</areaDesc></area>
  </info>
  <Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>
</alert>
"""

ALERT = parse_alert(DOCUMENT)
INFO = ALERT.infos[0]
AREA = INFO.areas[0]
# One record of each class, every field set to something other than its default.
RECORDS: dict[type[Any], Any] = {
    Alert: ALERT,
    Info: INFO,
    Area: AREA,
    Resource: INFO.resources[0],
    Circle: AREA.circles[0],
    ValuePair: AREA.geocodes[0],
    AlertKey: ALERT.references[0],
    Finding: Finding(ERROR, "cap.rule", "/alert/info[1]", "a message"),
}
CLASSES = list(RECORDS)


def _values(record: Any) -> list[Any]:
    return [getattr(record, f.name) for f in dataclasses.fields(record)]


def _same(one: Any, other: Any) -> bool:
    """Equal, of the same class, and equal in every field (those outside equality too)."""
    return type(one) is type(other) and one == other and _values(one) == _values(other)


def test_every_record_class_is_checked() -> None:
    # Pure Python, dataclass(slots=True) leaves the class it replaced among the subclasses.
    named = {
        cls
        for cls in FrozenRecord.__subclasses__()
        if getattr(sys.modules[cls.__module__], cls.__name__, None) is cls
    }
    assert named == set(CLASSES)


def test_the_document_sets_every_field() -> None:
    for record in RECORDS.values():
        for field in dataclasses.fields(record):
            if field.default is not dataclasses.MISSING:
                assert getattr(record, field.name) != field.default, (type(record), field.name)
    assert ALERT.signature_count == 1
    assert ALERT.version == "1.1"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
class TestFrozenRecords:
    """Each record class against its dataclass fields."""

    def test_built_from_its_fields_in_order(self, cls: type[Any]) -> None:
        record = RECORDS[cls]
        assert _same(cls(*_values(record)), record)
        by_name = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        assert _same(cls(**by_name), record)

    def test_defaults_are_the_fields_defaults(self, cls: type[Any]) -> None:
        record = RECORDS[cls]
        fields = dataclasses.fields(record)
        required = [getattr(record, f.name) for f in fields if f.default is dataclasses.MISSING]
        built = cls(*required)
        for field in fields:
            if field.default is not dataclasses.MISSING:
                assert getattr(built, field.name) == field.default, field.name

    def test_missing_or_unknown_arguments_refused(self, cls: type[Any]) -> None:
        with pytest.raises(TypeError):
            cls()
        with pytest.raises(TypeError):
            cls(*_values(RECORDS[cls]), unknown=1)

    def test_frozen(self, cls: type[Any]) -> None:
        record = RECORDS[cls]
        for field in dataclasses.fields(record):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(record, field.name, getattr(record, field.name))

    def test_pickled_and_copied_with_every_field(self, cls: type[Any]) -> None:
        record = RECORDS[cls]
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert _same(pickle.loads(pickle.dumps(record, protocol)), record), protocol
        assert _same(copy.copy(record), record)
        assert _same(copy.deepcopy(record), record)
        assert _same(dataclasses.replace(record), record)

    def test_hash_follows_equality(self, cls: type[Any]) -> None:
        record = RECORDS[cls]
        assert hash(cls(*_values(record))) == hash(record)
