"""Policy as code: tolerances, routing, sign-off rules, audit-chain hashing. Pure: no DB, no HTTP."""
