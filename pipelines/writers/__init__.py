"""Writers: canonical documents back to exchange formats (UBL for the demo world and ERP export)."""

from pipelines.writers.ubl import write_ubl

__all__ = ["write_ubl"]
