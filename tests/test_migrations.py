"""Migrations build exactly the tables in code, on SQLite and PostgreSQL (`alembic check`)."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from app.db import migrate


def test_alembic_check_passes(engine: Engine) -> None:
    migrate.check(engine.url.render_as_string(hide_password=False))


def test_core_tables_exist(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {
        "documents",
        "invoices",
        "suppliers",
        "supplier_bank_accounts",
        "purchase_orders",
        "po_lines",
        "goods_receipts",
        "receipt_lines",
        "cases",
        "findings",
        "match_lines",
        "audit_events",
        "audit_chain_head",
    } <= tables
