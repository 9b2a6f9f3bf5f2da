"""Master data: suppliers, bank accounts, purchase orders and goods receipts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, BigId, ExactDecimal, IdMixin, TimestampMixin


class Supplier(IdMixin, TimestampMixin, Base):
    """A supplier as known to the ERP; `ref` is the ERP's key."""

    __tablename__ = "suppliers"

    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    vat_id: Mapped[str | None] = mapped_column(String(32), index=True)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(255))

    bank_accounts: Mapped[list[SupplierBankAccount]] = relationship(
        back_populates="supplier", lazy="raise", cascade="all, delete-orphan"
    )


class SupplierBankAccount(IdMixin, Base):
    """An IBAN the supplier is known to be paid to, with the period it was valid."""

    __tablename__ = "supplier_bank_accounts"
    __table_args__ = (UniqueConstraint("supplier_id", "iban"),)

    supplier_id: Mapped[int] = mapped_column(BigId, ForeignKey("suppliers.id"), index=True)
    iban: Mapped[str] = mapped_column(String(34), index=True)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)

    supplier: Mapped[Supplier] = relationship(back_populates="bank_accounts", lazy="raise")


class PurchaseOrderRow(IdMixin, TimestampMixin, Base):
    """A purchase order header."""

    __tablename__ = "purchase_orders"

    number: Mapped[str] = mapped_column(String(64), unique=True)
    supplier_id: Mapped[int] = mapped_column(BigId, ForeignKey("suppliers.id"), index=True)
    company: Mapped[str | None] = mapped_column(String(64))
    order_date: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="open")

    lines: Mapped[list[PurchaseOrderLineRow]] = relationship(
        back_populates="purchase_order",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="PurchaseOrderLineRow.id",
    )


class PurchaseOrderLineRow(IdMixin, Base):
    """One PO line: an item ordered or a planned charge."""

    __tablename__ = "po_lines"
    __table_args__ = (UniqueConstraint("purchase_order_id", "line_no"),)

    purchase_order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("purchase_orders.id"), index=True
    )
    line_no: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    unit_code: Mapped[str] = mapped_column(String(8))
    unit_price: Mapped[Decimal] = mapped_column(ExactDecimal())
    price_base_quantity: Mapped[Decimal] = mapped_column(ExactDecimal(), default=Decimal(1))
    tax_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    kind: Mapped[str] = mapped_column(String(16), default="goods")
    receipt_required: Mapped[bool] = mapped_column(Boolean, default=True)

    purchase_order: Mapped[PurchaseOrderRow] = relationship(back_populates="lines", lazy="raise")


class GoodsReceiptRow(IdMixin, TimestampMixin, Base):
    """A goods receipt (or a return) against one PO."""

    __tablename__ = "goods_receipts"

    number: Mapped[str] = mapped_column(String(64), unique=True)
    purchase_order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("purchase_orders.id"), index=True
    )
    receipt_date: Mapped[date | None] = mapped_column(Date)

    lines: Mapped[list[ReceiptLineRow]] = relationship(
        back_populates="receipt", lazy="raise", cascade="all, delete-orphan"
    )


class ReceiptLineRow(IdMixin, Base):
    """Quantity received (positive) or returned (negative) for one PO line."""

    __tablename__ = "receipt_lines"

    goods_receipt_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("goods_receipts.id"), index=True
    )
    po_line_id: Mapped[int] = mapped_column(BigId, ForeignKey("po_lines.id"), index=True)
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    unit_code: Mapped[str] = mapped_column(String(8))

    receipt: Mapped[GoodsReceiptRow] = relationship(back_populates="lines", lazy="raise")
