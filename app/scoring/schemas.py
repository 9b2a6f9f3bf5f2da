"""Scoring API schemas, version 1: a stable contract for other systems (ERP, portal, RPA)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.canonical import AnySupplierDocument
from pipelines.findings import Finding

SCHEMA_VERSION: Literal["1"] = "1"
MAX_BATCH = 1000


class ScoreRequest(BaseModel):
    """One canonical document (invoice, credit note or claim) to score without opening a case."""

    model_config = ConfigDict(extra="forbid")

    document: AnySupplierDocument


class ScoreBatchRequest(BaseModel):
    """Up to 1,000 documents, scored in the order given."""

    model_config = ConfigDict(extra="forbid")

    documents: list[AnySupplierDocument] = Field(min_length=1, max_length=MAX_BATCH)


class ModelRef(BaseModel):
    """The registered model version behind an output."""

    name: str
    version: str
    run_id: str


class Contribution(BaseModel):
    """One feature's contribution to an output, in words a clerk understands."""

    feature: str
    contribution: float | None
    text: str


class ReasonOutput(BaseModel):
    """Calibrated probability per canonical reason code, and the codes above their thresholds."""

    model: ModelRef
    probabilities: dict[str, float | None]
    predicted: list[str]
    explanation: list[Contribution]


class DuplicateCandidate(BaseModel):
    """An earlier document this one may repeat (`document:<id>` or `request:<index>`)."""

    ref: str
    probability: float | None


class AnomalyOutput(BaseModel):
    """Duplicate probability and candidates, and how unusual prices and amounts are."""

    model: ModelRef
    duplicate_probability: float | None
    duplicate_of: str | None
    candidates: list[DuplicateCandidate]
    anomaly_score: float | None
    unusual: bool
    explanation: list[Contribution]


class DelayOutput(BaseModel):
    """Predicted hours to resolution (median, p90) and the probability of an SLA breach."""

    model: ModelRef
    p50_hours: float | None
    p90_hours: float | None
    p_sla_breach: float | None
    explanation: list[Contribution]


class ScoreResult(BaseModel):
    """Findings of the rules and each model's output; a family without a model is null."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    supplier_ref: str | None
    queue: str
    findings: list[Finding]
    reasons: ReasonOutput | None
    anomaly: AnomalyOutput | None
    delay: DelayOutput | None


class FieldReadingOut(BaseModel):
    """How one header field was read from a PDF's visible text, and how sure the reader is."""

    value: str | None
    confidence: float = Field(ge=0, le=1)
    page: int | None = None
    span: str | None = Field(default=None, description="the text the value was read from")
    label: str | None = Field(default=None, description="the printed label that announced it")


class ScoreDocumentResult(ScoreResult):
    """A score for an uploaded file, with the format detected and the document as it was read.

    `extraction` is set only for a PDF read from its visible text: each header field with its
    confidence (e-invoice XML, also when embedded in a PDF, is exact and has none).
    """

    detected_format: str = Field(
        description="pdf, facturx_pdf, ubl_invoice, ubl_credit_note, cii or csv"
    )
    document: AnySupplierDocument
    extraction: dict[str, FieldReadingOut] | None = None


class ScoreBatchResult(BaseModel):
    """One result per document, in request order."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    results: list[ScoreResult]
