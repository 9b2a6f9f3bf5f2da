"""Reading master-data files (JSON or CSV) into typed records, with row-precise errors.

A folder holds any of: `suppliers`, `purchase_orders`, `goods_receipts`, each as `.json`
(a list of records) or `.csv` (one row per supplier, PO line or receipt line). The README
documents the columns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import InvalidInput
from app.masterdata.schemas import BankAccountIn, MasterData, SupplierIn
from pipelines.canonical import GoodsReceipt, PurchaseOrder

M = TypeVar("M", bound=BaseModel)

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


def _grouped_csv(
    path: Path,
    model: type[M],
    key: str,
    header: dict[str, str],
    line_columns: tuple[str, ...],
) -> list[M]:
    """Records with lines from a CSV of one row per line, grouped by the `key` column.

    `header` maps record fields to columns, read from a record's first row.
    """
    records: dict[str, dict[str, Any]] = {}
    for number, row in _rows(path):
        values = _blank_to_none(row)
        if not values.get(key):
            raise _fail(path, f"row {number}", ValueError(f"{key} is empty"))
        record = records.setdefault(
            values[key],
            {f: values[c] for f, c in header.items() if values.get(c) is not None},
        )
        line: dict[str, Any] = {c: values[c] for c in line_columns if values.get(c)}
        if "receipt_required" in line:
            line["receipt_required"] = _truthy(line["receipt_required"])
        record.setdefault("lines", []).append(line)
    try:
        return [model.model_validate(record) for record in records.values()]
    except ValidationError as exc:
        raise _fail(path, "", exc) from exc


def _pos_csv(path: Path) -> list[PurchaseOrder]:
    header = {f: f for f in ("supplier_ref", "currency", "order_date", "status", "company")}
    return _grouped_csv(
        path, PurchaseOrder, "po_number", {"number": "po_number", **header}, PO_COLUMNS[6:]
    )


def _receipts_csv(path: Path) -> list[GoodsReceipt]:
    header = {"number": "receipt_number", "po_number": "po_number", "receipt_date": "receipt_date"}
    return _grouped_csv(path, GoodsReceipt, "receipt_number", header, RECEIPT_COLUMNS[3:])


def _json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, "", exc) from exc
    if not isinstance(data, list):
        raise _fail(path, "", ValueError("expected a JSON list of records"))
    return data


JSON_MODELS: dict[str, type[BaseModel]] = {
    "suppliers": SupplierIn,
    "purchase_orders": PurchaseOrder,
    "goods_receipts": GoodsReceipt,
}
CSV_READERS: dict[str, Callable[[Path], list[Any]]] = {
    "suppliers": _suppliers_csv,
    "purchase_orders": _pos_csv,
    "goods_receipts": _receipts_csv,
}


def read_master_data(folder: Path) -> MasterData:
    """Read suppliers, purchase orders and receipts from a folder of JSON or CSV files."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", code="MASTER_DATA_INVALID")
    found: dict[str, list[Any]] = {}
    for name, model in JSON_MODELS.items():
        json_path, csv_path = folder / f"{name}.json", folder / f"{name}.csv"
        if json_path.exists():
            try:
                found[name] = [model.model_validate(r) for r in _json_list(json_path)]
            except ValidationError as exc:
                raise _fail(json_path, "", exc) from exc
        elif csv_path.exists():
            found[name] = CSV_READERS[name](csv_path)
    if not found:
        raise InvalidInput(
            f"{folder} holds none of suppliers, purchase_orders, goods_receipts (.json or .csv)",
            code="MASTER_DATA_INVALID",
        )
    return MasterData.model_validate(found)
