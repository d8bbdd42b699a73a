"""Deployment: export a model to one self-contained ONNX or TorchScript file with a metadata
sidecar (``export``), and run an exported ONNX file as a model (``onnx_backend``)."""
