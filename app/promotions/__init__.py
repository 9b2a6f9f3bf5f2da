"""Model promotion: requests with evidence, a controller's approval, rollback, kill switch."""
