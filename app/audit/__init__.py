"""The audit log: every state change, human or model, hash-chained."""
