"""The GLUE tasks: data (``glue``), tokenization, metrics, and the training and scoring loops
the proxies share (``training``). Imports ``design``, ``nn`` and ``measure.runtime``.
"""
