"""Policy as code: tolerances, routing, sign-off rules, audit-chain hashing. No DB, no HTTP."""
