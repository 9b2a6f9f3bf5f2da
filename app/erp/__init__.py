"""ERP adapters and posting: what leaves Tollgate for the ERP, exactly once."""
