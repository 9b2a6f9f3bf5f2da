"""ORM tables (DESIGN §5). Importing this package registers every table on Base.metadata."""

from app.db.tables.audit import AuditChainHead, AuditEvent
from app.db.tables.cases import Case, CaseState, FindingRow, MatchLine
from app.db.tables.documents import Document, InvoiceRow, ParseStatus
from app.db.tables.masterdata import (
    GoodsReceiptRow,
    PurchaseOrderLineRow,
    PurchaseOrderRow,
    ReceiptLineRow,
    Supplier,
    SupplierBankAccount,
)

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "Case",
    "CaseState",
    "Document",
    "FindingRow",
    "GoodsReceiptRow",
    "InvoiceRow",
    "MatchLine",
    "ParseStatus",
    "PurchaseOrderLineRow",
    "PurchaseOrderRow",
    "ReceiptLineRow",
    "Supplier",
    "SupplierBankAccount",
]
