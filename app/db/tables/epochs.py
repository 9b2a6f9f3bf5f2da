"""Data epochs: a token that changes whenever data some in-process cache was built from changes."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class DataEpoch(Base):
    """One row per cached view of the data; writers give it a fresh random token.

    A token, not a counter: a rolled-back bump must never be reused by a later one, or a cache
    filled inside the rolled-back transaction would look current again.
    """

    __tablename__ = "data_epochs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
