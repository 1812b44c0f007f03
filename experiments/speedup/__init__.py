"""The speedup experiment, one module a question; ``run.py`` is its command line.

- ``models``: the four models (ours and HF's BERT-base and SqueezeBERT, one set of weights), the
  command line's latency protocol, their parity, a report written or shown.
- ``compare``: the default run: the four interleaved in torch, then in onnxruntime; the targets.
- ``profiling``: ``--profile``: where each model's time goes (torch, the GEMM kernels, onnxruntime).
- ``sweep``: ``--sweep``: the speedup over sequence length x threads.
- ``precision``: ``--precision``: the speedup at fp32, bf16 and int8; ``precision_accuracy``:
  what each precision does to a fine-tuned SST-2 classifier.
- ``gpu``: ``--device cuda`` (and ``--compile``): the speedup on a CUDA GPU.
"""
