"""Content-addressed storage of received bytes: the sha256 names the file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of the bytes."""
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Files under a root folder, fanned out by the first two hex digits of their sha256.

    Each blob is written to a temporary file, fsynced, then renamed into place, so a name that
    exists always holds complete bytes. With `defer_sync`, writing runs on background threads
    while the caller goes on parsing and matching; `flush()` waits for it and must be called
    before the transaction that refers to the blobs commits.
    """

    def __init__(self, root: Path, *, defer_sync: bool = False) -> None:
        self.root = root
        self._made: set[Path] = set()  # fan-out folders known to exist
        self._pool = ThreadPoolExecutor(max_workers=2) if defer_sync else None
        self._pending: list[Future[None]] = []
        self._queued: set[str] = set()  # written in the background, not yet flushed

    def relative_path(self, sha256: str) -> str:
        """Where a blob lives, relative to the root."""
        return f"{sha256[:2]}/{sha256}"

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store the bytes once (temp file, fsync, rename); return the relative path."""
        digest = sha256 or sha256_hex(data)
        rel = self.relative_path(digest)
        target = self.root / rel
        if rel in self._queued or target.exists():
            return rel
        if self._pool is None:
            self._write(data, target)
        else:
            self._queued.add(rel)
            self._pending.append(self._pool.submit(self._write, data, target))
        return rel

    def _write(self, data: bytes, target: Path) -> None:
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def flush(self) -> None:
        """Wait until every blob written so far is durable and in place."""
        pending, self._pending = self._pending, []
        self._queued.clear()
        for future in pending:
            future.result()

    def read(self, rel: str) -> bytes:
        """The stored bytes."""
        return (self.root / rel).read_bytes()
