"""Streaming reader for XES event logs (IEEE 1849), plain or gzipped, without DTDs or entities."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XmlSyntaxError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from pipelines.parsers.errors import ParseError, ParseErrorCode

# A typed XES attribute value. XES <float> is read as Decimal so that amounts stay exact here;
# callers that feed a model convert to float at the feature boundary.
XesValue = str | int | Decimal | bool | datetime

_GZIP_MAGIC = b"\x1f\x8b"
_TYPED_ATTRIBUTES = frozenset({"string", "date", "int", "float", "boolean", "id"})


@dataclass(frozen=True, slots=True)
class XesEvent:
    """One event: activity name, timestamp (offset-aware) and its other top-level attributes."""

    activity: str
    timestamp: datetime
    attributes: dict[str, XesValue] = field(default_factory=dict)

    def get_str(self, key: str) -> str | None:
        """Return attribute `key` as a string, or None when absent."""
        value = self.attributes.get(key)
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class XesTrace:
    """One case: its id, its top-level case attributes and its events in timestamp order."""

    case_id: str
    attributes: dict[str, XesValue]
    events: tuple[XesEvent, ...]

    @property
    def start(self) -> datetime:
        """Timestamp of the first event."""
        return self.events[0].timestamp

    @property
    def end(self) -> datetime:
        """Timestamp of the last event."""
        return self.events[-1].timestamp


def _local(tag: str) -> str:
    """Strip an XML namespace: some writers put XES in xmlns="http://www.xes-standard.org/"."""
    return tag.rsplit("}", 1)[-1]


def _parse_value(kind: str, key: str, raw: str) -> XesValue:
    """Convert the `value` of a typed XES attribute, raising a typed error on bad input."""
    try:
        if kind == "date":
            stamp = datetime.fromisoformat(raw.strip())
            # Keep the writer's offset: hour-of-day features want local wall time, and aware
            # datetimes still compare correctly across offsets. No offset: assume UTC.
            return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
        if kind == "int":
            return int(raw)
        if kind == "float":
            return Decimal(raw.strip())
        if kind == "boolean":
            lowered = raw.strip().lower()
            if lowered not in {"true", "false"}:
                raise ValueError(raw)
            return lowered == "true"
    except (ValueError, InvalidOperation) as exc:
        raise ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"XES attribute {key!r} has an unreadable {kind} value.",
            detail=raw[:200],
        ) from exc
    return raw


def _attributes(elem: Element) -> dict[str, XesValue]:
    """Collect the direct typed attribute children of `elem` (nested attributes are skipped)."""
    out: dict[str, XesValue] = {}
    for child in elem:
        kind = _local(child.tag)
        if kind not in _TYPED_ATTRIBUTES:
            continue
        key = child.get("key")
        raw = child.get("value")
        if key is None or raw is None:
            continue
        out[key] = _parse_value(kind, key, raw)
    return out


class _CountingReader(io.RawIOBase):
    """Report how many bytes of the underlying (compressed) file have been consumed."""

    def __init__(self, inner: IO[bytes], on_read: Callable[[], None]) -> None:
        self._inner = inner
        self._on_read = on_read

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` from the inner stream and notify the caller."""
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self._on_read()
        return len(data)


def _trace_from(elem: Element, events: list[XesEvent], ordinal: int) -> XesTrace:
    """Build a trace from a finished <trace> element and the events already read from it."""
    attrs = _attributes(elem)
    case_id = str(attrs.get("concept:name", f"trace-{ordinal}"))
    # Stable sort: writers usually emit chronological order, but XES does not promise it.
    ordered = tuple(sorted(events, key=lambda e: e.timestamp))
    return XesTrace(case_id=case_id, attributes=attrs, events=ordered)


def _event_from(elem: Element, case_ordinal: int) -> XesEvent:
    """Build an event from a finished <event> element; name and timestamp are required."""
    attrs = _attributes(elem)
    name = attrs.pop("concept:name", None)
    stamp = attrs.pop("time:timestamp", None)
    if not isinstance(stamp, datetime):
        raise ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"An event of trace #{case_ordinal} has no time:timestamp date.",
        )
    if name is None:
        raise ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"An event of trace #{case_ordinal} has no concept:name.",
        )
    return XesEvent(activity=str(name), timestamp=stamp, attributes=attrs)


def iter_traces(
    path: Path, *, progress: Callable[[int, int], None] | None = None
) -> Iterator[XesTrace]:
    """Stream the traces of an XES file (optionally gzipped); traces with no events are skipped.

    `progress(done, total)` is called with bytes of the file read so far and the file size.
    Raises ParseError (UNSAFE_XML for DTDs/entities, MALFORMED_XML, INVALID_VALUE).
    """
    total = path.stat().st_size
    raw = path.open("rb")
    try:
        head = raw.read(2)
        raw.seek(0)

        def report() -> None:
            if progress is not None:
                progress(raw.tell(), total)

        counted = io.BufferedReader(_CountingReader(raw, report), buffer_size=1 << 16)
        stream: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=counted, mode="rb") if head == _GZIP_MAGIC else counted
        )
        yield from _iter_stream(stream)
    finally:
        raw.close()
    if progress is not None:
        progress(total, total)


def _iter_stream(stream: io.BufferedIOBase) -> Iterator[XesTrace]:
    """Parse an XES byte stream, freeing each trace's elements once it has been yielded."""
    root: Element | None = None
    depth = 0
    trace_depth = -1
    events: list[XesEvent] = []
    ordinal = 0
    try:
        for kind, elem in iterparse(stream, events=("start", "end"), forbid_dtd=True):
            if kind == "start":
                depth += 1
                if root is None:
                    root = elem
                    if _local(elem.tag) != "log":
                        raise ParseError(
                            ParseErrorCode.UNSUPPORTED_FORMAT,
                            "This XML file is not an XES event log (no <log> root).",
                        )
                elif trace_depth < 0 and _local(elem.tag) == "trace":
                    trace_depth = depth
                continue
            depth -= 1
            tag = _local(elem.tag)
            if tag == "event" and trace_depth >= 0 and depth == trace_depth:
                events.append(_event_from(elem, ordinal))
                elem.clear()
            elif tag == "trace" and depth + 1 == trace_depth:
                trace_depth = -1
                if events:
                    yield _trace_from(elem, events, ordinal)
                ordinal += 1
                events = []
                # Drop finished traces from the tree so memory stays flat on large logs.
                if root is not None:
                    root.clear()
    except DefusedXmlException as exc:
        raise ParseError(
            ParseErrorCode.UNSAFE_XML,
            "The event log declares a DTD or entities; refusing to read it.",
            detail=type(exc).__name__,
        ) from exc
    except XmlSyntaxError as exc:
        raise ParseError(
            ParseErrorCode.MALFORMED_XML, "The event log is not well-formed XML.", detail=str(exc)
        ) from exc
    except (OSError, EOFError) as exc:
        # gzip raises BadGzipFile (an OSError) or EOFError on truncated or corrupt archives.
        raise ParseError(
            ParseErrorCode.MALFORMED_XML,
            "The event log archive is corrupt or truncated.",
            detail=str(exc),
        ) from exc


def read_xes(path: Path, *, progress: Callable[[int, int], None] | None = None) -> list[XesTrace]:
    """Read all traces of an XES file into memory (see iter_traces)."""
    return list(iter_traces(path, progress=progress))
