"""ORM tables (DESIGN §5). Importing this package registers every table on Base.metadata."""

from app.db.tables.apikeys import ApiCall, ApiKey
from app.db.tables.audit import AuditChainHead, AuditEvent
from app.db.tables.cases import Case, CaseState, FindingRow, MatchLine
from app.db.tables.documents import Document, InvoiceRow, ParseStatus
from app.db.tables.epochs import DataEpoch
from app.db.tables.hints import SupplierHintRow
from app.db.tables.masterdata import (
    GoodsReceiptRow,
    PurchaseOrderLineRow,
    PurchaseOrderRow,
    ReceiptLineRow,
    Supplier,
    SupplierBankAccount,
)
from app.db.tables.predictions import Prediction
from app.db.tables.promotions import ModelSwitch, PromotionKind, PromotionRequest, PromotionState
from app.db.tables.reviews import (
    Decision,
    DecisionAction,
    ErpPosting,
    FeedbackKind,
    PostingState,
    User,
    UserSession,
)
from app.db.tables.webhooks import DeliveryStatus, WebhookDelivery, WebhookSubscription

__all__ = [
    "ApiCall",
    "ApiKey",
    "AuditChainHead",
    "AuditEvent",
    "Case",
    "CaseState",
    "DataEpoch",
    "Decision",
    "DecisionAction",
    "DeliveryStatus",
    "Document",
    "ErpPosting",
    "FeedbackKind",
    "FindingRow",
    "GoodsReceiptRow",
    "InvoiceRow",
    "MatchLine",
    "ModelSwitch",
    "ParseStatus",
    "PostingState",
    "Prediction",
    "PromotionKind",
    "PromotionRequest",
    "PromotionState",
    "PurchaseOrderLineRow",
    "PurchaseOrderRow",
    "ReceiptLineRow",
    "Supplier",
    "SupplierBankAccount",
    "SupplierHintRow",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookSubscription",
]
