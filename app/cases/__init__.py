"""Cases: one per invoice, with findings, the match table and the state machine."""
