"""ML code: features, reason classifier, anomaly and duplicate detector, delay predictor."""
