"""SFace embedder: aligned 112x112 RGB face -> L2-normalised 128-d embedding."""

from __future__ import annotations

import numpy as np

from recognizer_node.align import ALIGNED_SIZE
from recognizer_node.embeddings import unit
from recognizer_node.inference import OnnxModel


class SFace(OnnxModel[np.ndarray, np.ndarray]):
    """Input: (112, 112, 3) uint8 RGB aligned face; output: (D,) float32 unit vector."""

    def preprocess(self, item: np.ndarray) -> np.ndarray:
        if item.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
            raise ValueError(f"expected an aligned (112, 112, 3) face, got {item.shape}")
        return item.transpose(2, 0, 1)[None].astype(np.float32)  # RGB 0..255: scaling is in the graph

    def postprocess(self, outputs: dict[str, np.ndarray], item: np.ndarray) -> np.ndarray:
        return unit(next(iter(outputs.values())).reshape(-1))
