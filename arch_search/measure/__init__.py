"""What a design costs: parameters and FLOPs (``cost``), latency measured on this machine
(``latency``, ``precision``, ``runtime``), and how a search prices it (``latency_model``, ``lut``).
Imports ``design`` and ``nn``.
"""
