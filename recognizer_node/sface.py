"""SFace embedder: aligned 112x112 RGB face -> L2-normalised 128-d embedding."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from recognizer_node.align import ALIGNED_SIZE
from recognizer_node.embeddings import unit
from recognizer_node.inference import OnnxModel


class SFace(OnnxModel[np.ndarray, np.ndarray]):
    """Input: (112, 112, 3) uint8 RGB aligned face; output: (D,) float32 unit vector."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        super().__init__(path, threads)
        # the installed copy takes any number of faces; the upstream file (or one of your own) maybe not
        self.batches = not isinstance(self.session.get_inputs()[0].shape[0], int)
        dim = self.session.get_outputs()[0].shape[-1]
        self.dim = dim if isinstance(dim, int) else 128

    def preprocess(self, item: np.ndarray) -> np.ndarray:
        if item.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
            raise ValueError(f"expected an aligned (112, 112, 3) face, got {item.shape}")
        return item.transpose(2, 0, 1)[None].astype(np.float32)  # RGB 0..255: scaling is in the graph

    def postprocess(self, outputs: dict[str, np.ndarray], item: np.ndarray) -> np.ndarray:
        return unit(next(iter(outputs.values())).reshape(-1))

    def embed(
        self, faces: Sequence[np.ndarray], batch: int = 1, workers: Executor | None = None
    ) -> np.ndarray:
        """(N, D) unit rows for N aligned faces, `batch` faces per inference (when the model takes more
        than one). One at a time is the default: three faces in one inference measured no faster than
        three inferences, and slower on a busy machine (bench/recognizer.py, "embedder alone").
        With `workers`, the inferences run in parallel (onnxruntime leaves the GIL while it runs)."""
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        step = batch if self.batches else 1

        def run(i: int) -> dict[str, np.ndarray]:
            return self.run(np.concatenate([self.preprocess(f) for f in faces[i : i + step]]))

        starts = range(0, len(faces), step)
        rows = list(workers.map(run, starts) if workers and len(starts) > 1 else map(run, starts))
        return unit(np.concatenate([next(iter(r.values())).reshape(-1, self.dim) for r in rows]))
