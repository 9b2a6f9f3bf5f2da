"""Write a generated world to a folder: master data, documents in every format, ground truth.

Layout of the folder (the README shows how to load and ingest it):

    master/             suppliers.json, purchase_orders.json, goods_receipts.json
                        (what `tollgate load-master-data` reads)
    late_receipts/      goods_receipts.json: receipts posted after their invoice arrived
    documents/ubl/      one UBL 2.1 file per document, named so that sorting gives arrival order
    documents/pdf/      the same documents as born-digital PDFs in the supplier's layout;
                        Factur-X suppliers' PDFs carry their CII XML inside
    documents/csv/      the same documents as CSV files for bulk intake (at most 1,000 per
                        file; a re-sent document number starts a new file)
    truth.jsonl         one line per document: true reasons, duplicate-of, rule-decidable,
                        review history
    manifest.json       the configuration, counts and a digest of the UBL files and the truth

UBL, truth and master data are byte-for-byte the same for the same seed on any machine; plain
PDFs are too for the pinned PDF library. Factur-X PDFs differ only in the timestamps the
factur-x library writes into their metadata (it takes them from the clock).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.writers.cii import write_cii
from pipelines.writers.csv_invoices import write_csv
from pipelines.writers.facturx import embed_facturx
from pipelines.writers.ubl import write_ubl
from training.synth.generator import GeneratedDocument, World
from training.synth.history import review_histories
from training.synth.pdf import render_pdf

GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class WrittenWorld:
    """Where a world was written and what it holds."""

    root: Path
    documents: int
    invoices: int
    with_exception: int
    ambiguous: int
    pdfs: int
    facturx: int


def _dump(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def _suppliers(world: World) -> list[dict[str, Any]]:
    out = []
    for s in world.suppliers:
        accounts: list[dict[str, Any]] = []
        if s.old_iban is not None and s.bank_change is not None:
            accounts.append({"iban": s.old_iban, "valid_to": s.bank_change.isoformat()})
            accounts.append({"iban": s.iban, "valid_from": s.bank_change.isoformat()})
        else:
            accounts.append({"iban": s.iban})
        out.append(
            {
                "ref": s.ref,
                "name": s.name,
                "vat_id": s.vat_id,
                "bank_accounts": accounts,
                "blocked": s.blocked,
                "category": s.category,
            }
        )
    return out


def file_stem(position: int, generated: GeneratedDocument) -> str:
    """`000123-D000456`: sorting the names gives the order documents arrived in."""
    return f"{position:06d}-{generated.doc_id}"


def truth_record(
    position: int, generated: GeneratedDocument, ubl: bytes, history: dict[str, object]
) -> dict[str, Any]:
    """One line of truth.jsonl."""
    doc = generated.document
    truth = generated.truth
    return {
        "doc_id": generated.doc_id,
        "file": file_stem(position, generated),
        "sha256": hashlib.sha256(ubl).hexdigest(),
        "kind": doc.kind,
        "number": doc.number,
        "issue_date": doc.issue_date.isoformat() if doc.issue_date else None,
        "supplier_ref": generated.supplier.ref or None,
        "supplier_name": generated.supplier.name,
        "company": generated.company.code,
        "po_number": generated.po_number,
        "currency": doc.currency,
        "net": str(doc.totals.tax_exclusive),
        "gross": str(doc.gross),
        "lines": len(doc.lines),
        "reasons": sorted(truth.reasons),
        "scenarios": truth.scenarios,
        "rule_decidable": truth.decidable,
        "duplicate_of": truth.duplicate_of,
        "billing_reference": getattr(doc, "billing_reference", None),
        "layout": generated.supplier.layout,
        "language": generated.supplier.language,
        "facturx": generated.supplier.facturx,
        "review": history,
    }


def _write_csv_batches(documents: list[GeneratedDocument], folder: Path) -> int:
    """CSV files of at most 1,000 documents; a re-sent number starts a new file (one key each)."""
    folder.mkdir(parents=True, exist_ok=True)
    batches: list[list[GeneratedDocument]] = [[]]
    keys: set[tuple[str, str | None, str]] = set()
    for generated in documents:
        doc = generated.document
        key = (doc.kind, doc.number, generated.supplier.name)
        if key in keys or len(batches[-1]) >= 1000:
            batches.append([])
            keys.clear()
        keys.add(key)
        batches[-1].append(generated)
    for number, batch in enumerate(batches, start=1):
        (folder / f"batch-{number:04d}.csv").write_bytes(write_csv(g.document for g in batch))
    return len(batches)


def write_world(
    world: World,
    out: Path,
    *,
    pdf: bool = True,
    progress: Callable[[int], None] | None = None,
) -> WrittenWorld:
    """Write `world` under `out` (created if needed); `progress` gets the documents written."""
    out.mkdir(parents=True, exist_ok=True)
    _dump(out / "master" / "suppliers.json", _suppliers(world))
    _dump(
        out / "master" / "purchase_orders.json",
        [po.model_dump(mode="json", exclude_defaults=True) for po in world.purchase_orders],
    )
    _dump(
        out / "master" / "goods_receipts.json",
        [gr.model_dump(mode="json", exclude_defaults=True) for gr in world.receipts],
    )
    _dump(
        out / "late_receipts" / "goods_receipts.json",
        [gr.model_dump(mode="json", exclude_defaults=True) for gr in world.late_receipts],
    )
    ubl_dir, pdf_dir = out / "documents" / "ubl", out / "documents" / "pdf"
    ubl_dir.mkdir(parents=True, exist_ok=True)
    if pdf:
        pdf_dir.mkdir(parents=True, exist_ok=True)
    histories = review_histories(world.documents, world.config.seed)
    digest = hashlib.sha256()
    pdfs = facturx = 0
    with (out / "truth.jsonl").open("w", encoding="utf-8") as truth_file:
        for position, generated in enumerate(world.documents, start=1):
            stem = file_stem(position, generated)
            ubl = write_ubl(generated.document)
            (ubl_dir / f"{stem}.xml").write_bytes(ubl)
            digest.update(ubl)
            if pdf:
                rendered = render_pdf(generated.document, generated.supplier.layout)
                if generated.supplier.facturx:
                    rendered = embed_facturx(rendered, write_cii(generated.document))
                    facturx += 1
                (pdf_dir / f"{stem}.pdf").write_bytes(rendered)
                pdfs += 1
            record = truth_record(position, generated, ubl, histories[generated.doc_id])
            line = json.dumps(record, ensure_ascii=False, sort_keys=True)
            truth_file.write(line + "\n")
            digest.update(line.encode())
            if progress is not None:
                progress(position)
    csv_files = _write_csv_batches(world.documents, out / "documents" / "csv")
    invoices = [g for g in world.documents if g.document.kind == "invoice"]
    written = WrittenWorld(
        root=out,
        documents=len(world.documents),
        invoices=len(invoices),
        with_exception=sum(1 for g in invoices if g.truth.reasons),
        ambiguous=sum(1 for g in world.documents if not g.truth.decidable),
        pdfs=pdfs,
        facturx=facturx,
    )
    kinds = Counter(g.document.kind for g in world.documents)
    _dump(
        out / "manifest.json",
        {
            "generator_version": GENERATOR_VERSION,
            "config": {
                "invoices": world.config.invoices,
                "seed": world.config.seed,
                "start": world.config.start.isoformat(),
                "months": world.config.months,
                "suppliers": world.config.supplier_count,
            },
            "counts": {
                "documents": written.documents,
                "by_kind": dict(sorted(kinds.items())),
                "invoices_with_exception": written.with_exception,
                "ambiguous": written.ambiguous,
                "purchase_orders": len(world.purchase_orders),
                "goods_receipts": len(world.receipts),
                "late_receipts": len(world.late_receipts),
                "pdfs": pdfs,
                "facturx_pdfs": facturx,
                "csv_files": csv_files,
            },
            "digest": digest.hexdigest(),
        },
    )
    return written
