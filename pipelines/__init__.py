"""Documents to facts: canonical types, parsers, resolution and 3-way matching. Pure: no DB, no HTTP."""
