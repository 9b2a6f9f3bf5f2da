"""Master data: suppliers, purchase orders and goods receipts, from files or the ERP."""
