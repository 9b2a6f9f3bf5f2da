"""Documents to facts: canonical types, parsers, resolution, 3-way matching. No DB, no HTTP."""
