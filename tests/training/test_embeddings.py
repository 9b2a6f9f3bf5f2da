"""MiniLM text embeddings: offline loading with the hub unreachable, and the text-hash cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.embeddings import DIMENSIONS, EmbeddingCache, TextEmbedder, text_key

REPO = Path(__file__).resolve().parents[2]


class CountingEncoder:
    """A stand-in encoder that records what it was asked to encode."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, len(text) % DIMENSIONS] = 1.0  # distinct enough to tell texts apart
        return out


def test_cache_dedupes_and_skips_known_texts(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    embedder = TextEmbedder(tmp_path, encoder)
    vectors = embedder.embed(["bolt M8", "bolt M8", "", "washer"])
    assert encoder.calls == [["bolt M8", "washer"]]  # each distinct text once, "" never
    assert vectors.shape == (4, DIMENSIONS)
    assert np.array_equal(vectors[0], vectors[1])
    assert not vectors[2].any()
    assert vectors[3, len("washer")] == 1.0

    again = TextEmbedder(tmp_path, encoder)  # a new process would start like this
    second = again.embed(["washer", "bolt M8", "nut"])
    assert encoder.calls[1:] == [["nut"]]
    assert again.encoded == 1
    assert np.array_equal(second[1], vectors[0])
    assert len(EmbeddingCache(tmp_path)) == 3


def test_cache_round_trips_vectors_by_sha256(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    vector = (np.arange(DIMENSIONS) / DIMENSIONS).astype(np.float32)
    cache.put_many({text_key("Fracht"): vector})
    got = cache.get_many([text_key("Fracht"), text_key("freight")])
    assert list(got) == [text_key("Fracht")]
    assert np.array_equal(got[text_key("Fracht")], vector)
    assert text_key("Fracht") == text_key("Fracht") != text_key("fracht")


_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from models.embeddings import TextEmbedder, minilm_encoder

    embedder = TextEmbedder(Path(sys.argv[1]), minilm_encoder())
    v = embedder.embed(["Freight charge", "Fracht", "Prices include delivery to your warehouse."])
    assert v.shape == (3, 384), v.shape
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    sim = v @ v.T
    print(f"{sim[0, 2]:.4f} {embedder.encoded}")
    """
)


def test_minilm_loads_with_the_hub_unreachable(tmp_path: Path) -> None:
    # A fresh interpreter, so no transformers module imported earlier can hide a hub call.
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens on the discard port
            "HF_HOME": str(tmp_path / "hf-home"),  # an empty hub cache: nothing to fall back on
            "PYTHONPATH": str(REPO),
        }
    )
    run = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    similarity, encoded = run.stdout.split()
    assert int(encoded) == 3
    # The freight label and the delivery note are related; a random vector would sit near 0.
    assert float(similarity) > 0.2
