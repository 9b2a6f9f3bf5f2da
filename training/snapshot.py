"""Review snapshots: decided cases as an immutable, hashed training set (`--from-reviews`).

The service exports one record per decided case (canonical document, findings, confirmed or
decided reasons, corrections, duplicate verdict, resolution hours, every decision). This module
writes them as canonical JSON lines to `<sha256>.jsonl` (read-only; the name is the hash of the
bytes, so a changed file no longer matches its name), reads them back only if the hash still
matches, and turns them into a world folder that the family trainers already read: the
snapshot's labels replace the truth of the same documents (matched by sha256) in an optional
generated world, and decided cases the world does not know are added.

Records whose decisions carry *business override* feedback keep `labels_excluded`: they are in
the snapshot (it is the record of what people did) but give no labels.

Training reads the file; it never imports the service.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SNAPSHOT_FORMAT = 1
SUFFIX = ".jsonl"


def canonical_bytes(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Compact JSON lines, keys sorted, in case order: the same data gives the same bytes."""
    ordered = sorted(records, key=lambda r: int(r["case_id"]))
    lines = [
        json.dumps(
            {"snapshot_format": SNAPSHOT_FORMAT, **r},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        for r in ordered
    ]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def write_snapshot(records: Sequence[Mapping[str, Any]], folder: Path) -> Path:
    """Write the records to `<folder>/<sha256>.jsonl`, read-only; an existing equal file is kept."""
    data = canonical_bytes(records)
    if not data:
        raise ValueError("no decided cases to snapshot")
    digest = hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{SUFFIX}"
    if path.exists():
        read_snapshot(path)  # same name, so it must hold the same bytes
        return path
    tmp = folder / f".{digest}.tmp"
    tmp.write_bytes(data)
    os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    tmp.replace(path)
    return path


def snapshot_sha(path: Path) -> str:
    """The sha256 a snapshot file is named by."""
    return path.name.removesuffix(SUFFIX)


def read_snapshot(path: Path) -> list[dict[str, Any]]:
    """The records of a snapshot, after checking the bytes still hash to the file's name."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != snapshot_sha(path):
        raise ValueError(f"{path.name} does not hash to its name (sha256 {digest}): altered")
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _truth_record(
    record: Mapping[str, Any], base: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """A world truth record carrying the snapshot's labels (None: it gives no labels)."""
    if record.get("labels_excluded"):
        return dict(base) if base is not None else None
    out: dict[str, Any] = dict(base or {})
    labels = record["labels"]
    received = record.get("received_at")
    review = dict(out.get("review") or {})
    review.update(
        {
            "queue": record.get("queue") or review.get("queue"),
            "received_at": received or review.get("received_at"),
            "hours_to_resolution": labels["resolution_hours"],
            "sla_breached": bool(labels["sla_breached"]),
            "sla_hours": record.get("sla_hours", review.get("sla_hours")),
            "queue_load": review.get("queue_load"),
            "decision": labels["outcome"],
            "handled_by": labels["decided_by"],
            "resolved_at": labels["resolved_at"],
        }
    )
    out.update(
        {
            "file": out.get("file") or f"review-case-{record['case_id']}",
            "sha256": record["document_sha256"],
            "kind": record.get("kind") or out.get("kind"),
            "number": record.get("number") or out.get("number"),
            "currency": record.get("currency") or out.get("currency"),
            "gross": record.get("gross") if record.get("gross") is not None else out.get("gross"),
            "supplier_ref": record.get("supplier_ref") or out.get("supplier_ref"),
            "po_number": record.get("po_number") or out.get("po_number"),
            "lines": record.get("lines") if record.get("lines") is not None else out.get("lines"),
            "reasons": sorted(labels["reasons"]),
            "review": review,
            "source": "reviews",
            "case_id": record["case_id"],
        }
    )
    verdict = labels.get("duplicate")
    if verdict is False:
        out["duplicate_of"] = None  # a person signed it: not a duplicate, whatever rules said
    return out


def mixed_world(
    records: Sequence[Mapping[str, Any]], world: Path | None, out: Path, *, documents: bool
) -> tuple[Path, dict[str, int]]:
    """Write a world folder at `out`: `world`'s truth with the snapshot's labels laid over it.

    With `documents` (families that parse the documents: reason, anomaly) only cases whose
    document is in `world` can be used; without (delay) every labelled case is added.
    """
    out.mkdir(parents=True, exist_ok=True)
    base = _read_jsonl(world / "truth.jsonl") if world is not None else []
    by_sha = {str(r.get("sha256")): r for r in base}
    merged: dict[str, dict[str, Any]] = {str(r.get("sha256")): dict(r) for r in base}
    counts = {"snapshot": len(records), "replaced": 0, "added": 0, "excluded": 0, "unusable": 0}
    for record in records:
        sha = str(record["document_sha256"])
        truth = _truth_record(record, by_sha.get(sha))
        if record.get("labels_excluded"):
            counts["excluded"] += 1
        if truth is None or record.get("labels_excluded"):
            continue
        if sha in by_sha:
            counts["replaced"] += 1
        elif documents:
            counts["unusable"] += 1  # no document file to parse for this family
            continue
        else:
            counts["added"] += 1
        merged[sha] = truth
    rows = sorted(
        merged.values(), key=lambda r: ((r.get("review") or {}).get("received_at") or "", r["file"])
    )
    (out / "truth.jsonl").write_text(
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8"
    )
    if world is not None:
        for name in ("master", "documents", "late_receipts"):
            if (world / name).exists() and not (out / name).exists():
                (out / name).symlink_to((world / name).resolve(), target_is_directory=True)
        for name in ("findings.jsonl", "manifest.json", "scenarios.json"):
            if (world / name).is_file() and not (out / name).exists():
                (out / name).symlink_to((world / name).resolve())
    else:
        (out / "master").mkdir(exist_ok=True)
    return out, counts


def train_from_reviews(
    family: str,
    snapshot: Path,
    *,
    world: Path | None = None,
    test_world: Path | None = None,
    tracking_uri: str | None = None,
    progress: Any = None,
    cards_dir: Path | None = None,
    trained_by: str | None = None,
    params: Mapping[str, object] | None = None,
) -> Any:
    """Train a challenger of `family` on the snapshot (mixed with `world`); returns TrainResult."""
    import tempfile

    from training.train import train_family

    records = read_snapshot(snapshot)
    with tempfile.TemporaryDirectory(prefix="tollgate-reviews-") as tmp:
        # The folder's name shows in the run's `world` tag and the card: it names the snapshot.
        folder = Path(tmp) / f"reviews-{snapshot_sha(snapshot)[:12]}"
        mixed, counts = mixed_world(records, world, folder, documents=family != "delay")
        if counts["replaced"] + counts["added"] == 0:
            raise ValueError(
                f"the snapshot gives no usable labels for {family}"
                + ("" if world is not None else " (this family needs --world with the documents)")
            )
        return train_family(
            family,
            world=mixed,
            test_world=test_world,
            tracking_uri=tracking_uri,
            progress=progress,
            cards_dir=cards_dir,
            trained_by=trained_by,
            snapshot=snapshot,
            params={**dict(params or {}), **{f"snapshot_{k}": v for k, v in counts.items()}},
        )
