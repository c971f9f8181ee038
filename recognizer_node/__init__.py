"""Local face recognition on onnxruntime (no OpenCV, no torch, no internet).

Pipeline: imageio (decode) -> detection + yunet (find faces) -> align (5-point similarity) -> sface
(embedding) -> quality (gates) -> matching (open set) against gallery (SQLite). `pipeline.Recognizer`
is the facade; `operations.RecognizerOperations` is what the node does for any caller (recognize, train,
gallery commands, archive search), with no transport; `service.RecognizerService` puts it on MQTT; `cli`
has the local commands; `models` installs and verifies the ONNX files. Accuracy, speed and the
defaults' rationale: docs/accuracy.md.
"""
