"""Master-data files in CSV and JSON; mistakes name the file and the row."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from app.errors import InvalidInput
from app.masterdata.loader import read_master_data

SUPPLIERS = """ref,name,vat_id,ibans,blocked,category
S1,Acme Ltd,GB123456789,GB29NWBK60161331926819;DE89370400440532013000,no,office
S2,Blocked BV,,,yes,
"""
POS = (
    (
        "po_number,supplier_ref,currency,order_date,status,line_no,item_id,description,quantity,"
        "unit_code,unit_price,receipt_required\n"
    )
    + """PO-1,S1,GBP,2026-09-01,,1,A,Paper,10,C62,21.50,
PO-1,S1,GBP,2026-09-01,,2,SVC,Service,1,C62,500,false
PO-2,S2,EUR,2026-09-02,closed,1,B,Boxes,100,C62,0.62,
"""
)
RECEIPTS = """receipt_number,po_number,receipt_date,po_line_no,quantity,unit_code
GR-1,PO-1,2026-09-03,1,6,C62
GR-1,PO-1,2026-09-03,2,1,
GR-2,PO-1,2026-09-05,1,-1,C62
"""


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_csv_master_data(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "md",
        **{"suppliers.csv": SUPPLIERS, "purchase_orders.csv": POS, "goods_receipts.csv": RECEIPTS},
    )
    data = read_master_data(folder)
    s1, s2 = data.suppliers
    assert [a.iban for a in s1.bank_accounts] == [
        "GB29NWBK60161331926819",
        "DE89370400440532013000",
    ]
    assert (s1.blocked, s2.blocked, s2.vat_id) == (False, True, None)
    po1, po2 = data.purchase_orders
    assert (po1.number, po1.status, len(po1.lines), po2.status) == ("PO-1", "open", 2, "closed")
    assert po1.lines[0].unit_price == Decimal("21.50")
    assert (po1.lines[0].receipt_required, po1.lines[1].receipt_required) == (True, False)
    gr1, gr2 = data.goods_receipts
    assert [line.quantity for line in gr1.lines] == [Decimal(6), Decimal(1)]
    assert gr2.lines[0].quantity == Decimal(-1)


def test_json_master_data(demo_dir: Path) -> None:
    data = read_master_data(demo_dir / "master")
    assert len(data.suppliers) == 4 and len(data.purchase_orders) == 22


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"suppliers.csv": "ref,name\nS1,\n"}, "suppliers.csv row 2"),
        ({"purchase_orders.csv": "po_number,supplier_ref\n,S1\n"}, "po_number is empty"),
        ({"suppliers.json": "{not json"}, "suppliers.json"),
        ({"suppliers.json": '{"ref": "S1"}'}, "expected a JSON list"),
        ({"notes.txt": "hello"}, "holds none of"),
    ],
)
def test_mistakes_are_clear(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        read_master_data(_write(tmp_path / "md", **files))
    assert message in error.value.message
    assert error.value.code == "MASTER_DATA_INVALID"
