"""The embedded ERP adapter: each approved invoice becomes a UBL 2.1 file in a folder.

One posting is two files named after its idempotency key: `<key>.xml` (the UBL 2.1 document)
and `<key>.json` (a sidecar: case id, signers, model versions, reference, amounts). Each file is
written under a temporary name, fsynced, renamed into place and the folder fsynced, so a crash
leaves either nothing or a whole file, never half of one. The sidecar is written last and is
the commit marker: `find_posted` and `list_posted` read sidecars only, so an XML without its
sidecar (a crash between the two renames) is simply written again by the next post.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.erp.protocol import (
    ErpRejected,
    ErpUnavailable,
    PostedDocument,
    PostingRequest,
    SupplierData,
)
from pipelines.canonical import GoodsReceipt, PurchaseOrder
from pipelines.writers.ubl import write_ubl

# Keys become file names: refuse anything that could escape the folder or hide a file.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TMP_SUFFIX = ".tmp"
REFERENCE_PREFIX = "UBL-"


def reference_for(key: str) -> str:
    """The reference this adapter gives the document posted with `key` (stable across posts)."""
    return f"{REFERENCE_PREFIX}{key}"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(folder: Path, name: str, data: bytes, *, durable: bool) -> None:
    """Write `folder/name` so that readers see the old state or the whole new file."""
    tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        # The rename is only durable once the directory entry is on disk.
        _fsync_dir(folder)


class UblExportAdapter:
    """An ErpAdapter that exports approved invoices as UBL 2.1 files (no master data)."""

    name = "ubl-export"

    def __init__(self, folder: Path, *, durable: bool = True) -> None:
        self.folder = Path(folder)
        self.durable = durable

    def _ready(self) -> Path:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ErpUnavailable(f"export folder {self.folder} is not usable: {exc}") from exc
        if not os.access(self.folder, os.W_OK):
            raise ErpUnavailable(f"export folder {self.folder} is not writable")
        return self.folder

    def check(self) -> str:
        """Say where documents go (raises ErpUnavailable when the folder is unusable)."""
        folder = self._ready()
        return f"UBL 2.1 export to {folder.resolve()}"

    def fetch_suppliers(self) -> list[SupplierData]:
        """None: an export folder holds no master data (load it from files instead)."""
        return []

    def fetch_purchase_orders(self, since: datetime | None = None) -> list[PurchaseOrder]:
        """None: see fetch_suppliers."""
        return []

    def fetch_receipts(self, since: datetime | None = None) -> list[GoodsReceipt]:
        """None: see fetch_suppliers."""
        return []

    def _key(self, key: str) -> str:
        if not _KEY.match(key):
            raise ErpRejected(f"idempotency key {key!r} cannot name a file")
        return key

    def post_invoice(self, request: PostingRequest) -> str:
        """Write the UBL file and its sidecar; a second post with the same key changes nothing."""
        key = self._key(request.idempotency_key)
        folder = self._ready()
        existing = self.find_posted(key)
        if existing is not None:
            return existing
        self._sweep(key)
        try:
            xml = write_ubl(request.document)
        except (ValueError, TypeError) as exc:
            raise ErpRejected(f"the document cannot be written as UBL: {exc}") from exc
        reference = reference_for(key)
        doc = request.document
        sidecar: dict[str, Any] = {
            "idempotency_key": key,
            "erp_reference": reference,
            "case_id": request.case_id,
            "kind": doc.kind,
            "number": doc.number,
            "supplier_ref": request.supplier_ref,
            "supplier_name": doc.supplier.name,
            "po_number": request.po_number,
            "currency": doc.currency,
            "gross": None if doc.gross is None else str(doc.gross),
            "signers": list(request.signers),
            "model_versions": dict(request.model_versions),
            "ubl_file": f"{key}.xml",
            "ubl_sha256": hashlib.sha256(xml).hexdigest(),
            "posted_at": datetime.now(UTC).isoformat(),
        }
        try:
            _write_atomically(folder, f"{key}.xml", xml, durable=self.durable)
            body = json.dumps(sidecar, indent=2, sort_keys=True).encode()
            _write_atomically(folder, f"{key}.json", body, durable=self.durable)
        except OSError as exc:
            raise ErpUnavailable(f"could not write to {folder}: {exc}") from exc
        return reference

    def _sweep(self, key: str) -> None:
        """Remove temporary files of this key left by a writer that was killed mid-write."""
        for path in self.folder.glob(f".{key}.*{TMP_SUFFIX}"):
            parts = path.name.rsplit(".", 3)  # .<key>.<ext> . <pid> . <random> . tmp
            pid = int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None
            if pid is not None and pid != os.getpid() and _alive(pid):
                continue  # another live process is writing this key right now
            path.unlink(missing_ok=True)

    def _sidecar(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ErpUnavailable(f"unreadable sidecar {path.name}: {exc}") from exc
        return data if isinstance(data, dict) else None

    def find_posted(self, idempotency_key: str) -> str | None:
        """The reference written for this key, or None when it was never (fully) posted."""
        key = self._key(idempotency_key)
        data = self._sidecar(self.folder / f"{key}.json")
        if data is None or not (self.folder / f"{key}.xml").exists():
            return None
        reference = data.get("erp_reference")
        return str(reference) if reference else None

    def list_posted(self, start: date, end: date) -> list[PostedDocument]:
        """Documents whose sidecar says they were posted between start and end (inclusive)."""
        if not self.folder.is_dir():
            return []
        out: list[PostedDocument] = []
        for path in sorted(self.folder.glob("*.json")):
            data = self._sidecar(path)
            if data is None or "idempotency_key" not in data:
                continue
            if not path.with_suffix(".xml").exists():
                continue  # a sidecar without its document is not a posting (see find_posted)
            posted_at = _parse_time(data.get("posted_at"))
            if posted_at is None or not start <= posted_at.date() <= end:
                continue
            out.append(
                PostedDocument(
                    idempotency_key=str(data["idempotency_key"]),
                    erp_reference=str(data.get("erp_reference") or ""),
                    supplier_ref=data.get("supplier_ref"),
                    currency=data.get("currency"),
                    gross=_parse_decimal(data.get("gross")),
                    posted_at=posted_at,
                )
            )
        return out

    def files_for(self, idempotency_key: str) -> list[Path]:
        """Every file (finished or temporary) in the folder that belongs to this key."""
        key = self._key(idempotency_key)
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.name in (f"{key}.xml", f"{key}.json") or p.name.startswith(f".{key}.")
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
