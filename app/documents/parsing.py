"""How intake reads a document: in a sandboxed worker process (the default) or in-process.

Documents from outside are hostile until parsed in bounds, so the service and the CLI parse in
a pool of worker processes (`pipelines.parsers.sandbox`) with wall-time, CPU and memory limits
and no network: a document that hangs or explodes costs its worker, never the service, and is
stored with a typed error (`TIMEOUT`, `MEMORY_LIMIT`, `PARSER_CRASHED`). In-process parsing is
for tests and tools that read trusted files.
"""

from __future__ import annotations

from typing import Protocol

from app.settings import Settings
from pipelines.extract import SupplierHint
from pipelines.extract.fields import learn_from_pdf
from pipelines.parsers import ParsedDocument, ParseLimits, parse_document
from pipelines.parsers.errors import ParseError, ParseErrorCode
from pipelines.parsers.sandbox import SandboxLimits, SandboxPool


class Parser(Protocol):
    """Reads one document, or raises ParseError."""

    def __call__(self, data: bytes, hint: SupplierHint | None = None) -> ParsedDocument: ...

    def learn(self, data: bytes, hint: SupplierHint, field_name: str, value: str) -> SupplierHint:
        """The hint, also knowing the label printed next to a clerk's corrected value."""
        ...

    def close(self) -> None: ...


class InProcessParser:
    """Parses in the calling process (trusted input, tests)."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits

    def __call__(self, data: bytes, hint: SupplierHint | None = None) -> ParsedDocument:
        """Read one document; `hint` is the supplier's learned labels, if known."""
        return parse_document(data, self.limits, hint=hint)

    def learn(self, data: bytes, hint: SupplierHint, field_name: str, value: str) -> SupplierHint:
        """Learn from a corrected field of a PDF, reading it in this process."""
        return learn_from_pdf(data, hint, field_name, value)

    def close(self) -> None:
        """Nothing to release."""


class SandboxedParser:
    """Parses in a pool of sandboxed worker processes; one document per upload."""

    def __init__(self, limits: SandboxLimits, workers: int) -> None:
        self.pool = SandboxPool(limits, workers=workers)

    def __call__(self, data: bytes, hint: SupplierHint | None = None) -> ParsedDocument:
        """Read one document in a worker; the worker's typed error is raised here."""
        outcome = self.pool.parse(data, hint)
        if isinstance(outcome, ParseError):
            raise outcome
        if len(outcome) != 1:
            raise ParseError(
                ParseErrorCode.UNSUPPORTED_DOCUMENT,
                f"This file holds {len(outcome)} documents; upload it through bulk intake "
                "(`tollgate ingest`), which reads every document in it.",
                detail=f"{len(outcome)} documents",
            )
        return outcome[0]

    def learn(self, data: bytes, hint: SupplierHint, field_name: str, value: str) -> SupplierHint:
        """Learn from a corrected field of a PDF, reading it in a worker; typed errors raise."""
        outcome = self.pool.learn(data, hint, field_name, value)
        if isinstance(outcome, ParseError):
            raise outcome
        return outcome

    def close(self) -> None:
        """Stop the workers."""
        self.pool.close()


def make_parser(settings: Settings) -> Parser:
    """The parser the settings ask for (sandboxed unless `parse_sandbox` is off)."""
    limits = ParseLimits(max_bytes=settings.max_parse_bytes)
    if not settings.parse_sandbox:
        return InProcessParser(limits)
    return SandboxedParser(
        SandboxLimits(
            wall_seconds=settings.parse_timeout_seconds,
            memory_bytes=settings.parse_memory_mib * 1024 * 1024,
            parse=limits,
        ),
        workers=settings.parse_workers,
    )
