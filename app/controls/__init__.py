"""Controls for controllers: the decision log, model-vs-human agreement, the audit sample, KPIs."""
