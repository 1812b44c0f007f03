"""The network a design builds: the encoder with grouped projections (``model``), weights from a
dense model (``inherit``), HF checkpoints in and out (``hf``) and ONNX export. Imports ``design``.
"""
