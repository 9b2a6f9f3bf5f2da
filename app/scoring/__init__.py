"""Model scoring of cases: predictions at intake, similar resolved cases, the score API."""
