"""Ingesting the public UBL examples: a document for each, no crash, totals as in the XML."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.blobs import BlobStore
from app.documents import repository
from app.documents.service import ingest_bytes

CBC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"
CAC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}"


def _ubl_examples(shared: Path) -> list[Path]:
    files = sorted((shared / "einvoice" / "en16931" / "ubl").glob("*"))
    files += sorted((shared / "einvoice" / "xrechnung").rglob("*_ubl.xml"))
    return [f for f in files if f.is_file()]


def _payable(path: Path) -> Decimal:
    root = ET.parse(path).getroot()
    node = root.find(f"{CAC}LegalMonetaryTotal/{CBC}PayableAmount")
    assert node is not None and node.text
    return Decimal(node.text.strip())


def test_every_public_ubl_example_becomes_a_case_with_its_payable_amount(
    session: Session, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    files = _ubl_examples(shared_data)
    assert len(files) >= 60, "expected the en16931 ubl/ and xrechnung *_ubl.xml examples"
    problems = []
    for path in files:
        outcome = ingest_bytes(
            session,
            blobs,
            path.read_bytes(),
            filename=path.name,
            channel="test",
            actor=Actor("tester", "clerk"),
        )
        if outcome.document.parse_error_code:
            problems.append(f"{path.name}: {outcome.document.parse_error_code}")
            continue
        invoice = repository.invoice_for_document(session, outcome.document.id)
        assert invoice is not None and outcome.case is not None
        if invoice.payable_total != _payable(path):
            problems.append(f"{path.name}: payable {invoice.payable_total} != {_payable(path)}")
    assert problems == []


@pytest.mark.parametrize("name", ["guide-example1.xml", "sample-discount-price.xml"])
def test_unknown_suppliers_are_findings_not_errors(
    session: Session, shared_data: Path, tmp_path: Path, name: str
) -> None:
    path = shared_data / "einvoice" / "en16931" / "ubl" / name
    outcome = ingest_bytes(
        session,
        BlobStore(tmp_path),
        path.read_bytes(),
        filename=name,
        channel="test",
        actor=Actor("tester", "clerk"),
    )
    assert outcome.case is not None
    assert "VENDOR_UNKNOWN" in outcome.reasons
