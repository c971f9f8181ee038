"""A tiny template for ONNX models: preprocess -> run -> postprocess (after Frigate's BaseEmbedding)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import onnxruntime as ort

from recognizer_node.models import ModelError

In = TypeVar("In")
Out = TypeVar("Out")


def make_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # two sessions alternate: spinning idle threads of one would steal the cores the other needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # SFace lists its weights as inputs: one warning per weight otherwise
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise ModelError(f"cannot load model {path}: {exc}; run `homesec models install`") from None


class OnnxModel(ABC, Generic[In, Out]):
    """One ONNX session with a fixed shape: `model(item)` = postprocess(run(preprocess(item)))."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self.session = make_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    @abstractmethod
    def preprocess(self, item: In) -> np.ndarray: ...

    @abstractmethod
    def postprocess(self, outputs: dict[str, np.ndarray], item: In) -> Out: ...

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, {self.input_name: tensor})
        return dict(zip(self.output_names, values, strict=True))

    def __call__(self, item: In) -> Out:
        return self.postprocess(self.run(self.preprocess(item)), item)
