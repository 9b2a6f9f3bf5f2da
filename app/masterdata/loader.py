"""Reading master-data files (JSON or CSV) into typed records, with row-precise errors.

A folder holds any of: `suppliers`, `purchase_orders`, `goods_receipts`, each as `.json`
(a list of records) or `.csv` (one row per supplier, PO line or receipt line). The README
documents the columns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.errors import InvalidInput
from app.masterdata.schemas import BankAccountIn, MasterData, SupplierIn
from pipelines.canonical import GoodsReceipt, PurchaseOrder

SUPPLIER_COLUMNS = ("ref", "name", "vat_id", "ibans", "blocked", "category", "email")
PO_COLUMNS = (
    "po_number",
    "supplier_ref",
    "currency",
    "order_date",
    "status",
    "company",
    "line_no",
    "item_id",
    "description",
    "category",
    "quantity",
    "unit_code",
    "unit_price",
    "price_base_quantity",
    "tax_rate",
    "kind",
    "receipt_required",
)
RECEIPT_COLUMNS = (
    "receipt_number",
    "po_number",
    "receipt_date",
    "po_line_no",
    "quantity",
    "unit_code",
)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for number, row in enumerate(reader, start=2):
            yield number, {k.strip(): (v or "").strip() for k, v in row.items() if k}


def _blank_to_none(row: dict[str, str]) -> dict[str, Any]:
    return {k: (v if v != "" else None) for k, v in row.items()}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "y", "x"}


def _fail(path: Path, where: str, exc: Exception) -> InvalidInput:
    return InvalidInput(
        f"{path.name} {where}: {exc}. Fix the file and load it again; nothing was loaded.",
        code="MASTER_DATA_INVALID",
    )


def _suppliers_csv(path: Path) -> list[SupplierIn]:
    out = []
    for number, row in _rows(path):
        try:
            values = _blank_to_none(row)
            ibans = [i.strip() for i in (values.pop("ibans", None) or "").split(";") if i.strip()]
            values["blocked"] = _truthy(values.get("blocked"))
            values["bank_accounts"] = [BankAccountIn(iban=i) for i in ibans]
            out.append(SupplierIn.model_validate(values))
        except ValidationError as exc:
            raise _fail(path, f"row {number}", exc) from exc
    return out


def _pos_csv(path: Path) -> list[PurchaseOrder]:
    headers: dict[str, dict[str, Any]] = {}
    for number, row in _rows(path):
        values = _blank_to_none(row)
        po_number = values.get("po_number")
        if not po_number:
            raise _fail(path, f"row {number}", ValueError("po_number is empty"))
        header = headers.setdefault(
            po_number,
            {
                "number": po_number,
                "supplier_ref": values.get("supplier_ref"),
                "currency": values.get("currency"),
                "order_date": values.get("order_date"),
                "status": values.get("status") or "open",
                "company": values.get("company"),
                "lines": [],
            },
        )
        line = {k: values.get(k) for k in PO_COLUMNS[6:] if values.get(k) is not None}
        line["receipt_required"] = values.get("receipt_required") is None or _truthy(
            values.get("receipt_required")
        )
        header["lines"].append(line)
    try:
        return [PurchaseOrder.model_validate(h) for h in headers.values()]
    except ValidationError as exc:
        raise _fail(path, "", exc) from exc


def _receipts_csv(path: Path) -> list[GoodsReceipt]:
    headers: dict[str, dict[str, Any]] = {}
    for number, row in _rows(path):
        values = _blank_to_none(row)
        receipt_number = values.get("receipt_number")
        if not receipt_number:
            raise _fail(path, f"row {number}", ValueError("receipt_number is empty"))
        header = headers.setdefault(
            receipt_number,
            {
                "number": receipt_number,
                "po_number": values.get("po_number"),
                "receipt_date": values.get("receipt_date"),
                "lines": [],
            },
        )
        line = {"po_line_no": values.get("po_line_no"), "quantity": values.get("quantity")}
        if values.get("unit_code"):
            line["unit_code"] = values["unit_code"]
        header["lines"].append(line)
    try:
        return [GoodsReceipt.model_validate(h) for h in headers.values()]
    except ValidationError as exc:
        raise _fail(path, "", exc) from exc


def _json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, "", exc) from exc
    if not isinstance(data, list):
        raise _fail(path, "", ValueError("expected a JSON list of records"))
    return data


def read_master_data(folder: Path) -> MasterData:
    """Read suppliers, purchase orders and receipts from a folder of JSON or CSV files."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", code="MASTER_DATA_INVALID")
    found: dict[str, Any] = {}
    for name in ("suppliers", "purchase_orders", "goods_receipts"):
        json_path, csv_path = folder / f"{name}.json", folder / f"{name}.csv"
        if json_path.exists():
            try:
                model = {
                    "suppliers": SupplierIn,
                    "purchase_orders": PurchaseOrder,
                    "goods_receipts": GoodsReceipt,
                }[name]
                found[name] = [model.model_validate(r) for r in _json_list(json_path)]  # type: ignore[attr-defined]
            except ValidationError as exc:
                raise _fail(json_path, "", exc) from exc
        elif csv_path.exists():
            reader = {
                "suppliers": _suppliers_csv,
                "purchase_orders": _pos_csv,
                "goods_receipts": _receipts_csv,
            }[name]
            found[name] = reader(csv_path)
    if not found:
        raise InvalidInput(
            f"{folder} holds none of suppliers, purchase_orders, goods_receipts (.json or .csv)",
            code="MASTER_DATA_INVALID",
        )
    return MasterData(**found)
