"""ML code: features, reason classifier, anomaly/duplicate detector, delay predictor. No web, no DB."""
