"""Master-data records as loaded from files (or, later, synced from the ERP)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from pipelines.canonical import GoodsReceipt, PurchaseOrder


class BankAccountIn(BaseModel):
    """A supplier IBAN and the period it is valid."""

    model_config = ConfigDict(extra="forbid")

    iban: str
    valid_from: date | None = None
    valid_to: date | None = None


class SupplierIn(BaseModel):
    """A supplier record."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    vat_id: str | None = None
    bank_accounts: list[BankAccountIn] = Field(default_factory=list)
    blocked: bool = False
    category: str | None = None
    email: str | None = None


class MasterData(BaseModel):
    """Everything one load brings."""

    suppliers: list[SupplierIn] = Field(default_factory=list)
    purchase_orders: list[PurchaseOrder] = Field(default_factory=list)
    goods_receipts: list[GoodsReceipt] = Field(default_factory=list)


class LoadSummary(BaseModel):
    """What a load changed."""

    suppliers_created: int = 0
    suppliers_updated: int = 0
    bank_accounts_added: int = 0
    purchase_orders_created: int = 0
    purchase_orders_updated: int = 0
    receipts_created: int = 0
    receipts_updated: int = 0
    affected_purchase_orders: list[str] = Field(
        default_factory=list, description="POs whose lines or receipts this load wrote"
    )
