"""Intake: storing received bytes, reading them and opening a case."""
