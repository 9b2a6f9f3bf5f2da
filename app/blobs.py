"""Content-addressed storage of received bytes: the sha256 names the file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of the bytes."""
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Files under a root folder, fanned out by the first two hex digits of their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: set[Path] = set()  # fan-out folders known to exist

    def relative_path(self, sha256: str) -> str:
        """Where a blob lives, relative to the root."""
        return f"{sha256[:2]}/{sha256}"

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store the bytes once (atomically: temp file, fsync, rename); return the relative path."""
        digest = sha256 or sha256_hex(data)
        rel = self.relative_path(digest)
        target = self.root / rel
        if target.exists():
            return rel
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
        return rel

    def read(self, rel: str) -> bytes:
        """The stored bytes."""
        return (self.root / rel).read_bytes()
