"""The experiments: one folder per question (``run.py`` -> results.md, summary.json, the rows
behind them), run from the repository root as ``python experiments/<name>/run.py``, and what
they share, ``experiments.toolkit``. A package of the checkout (an editable install or the
repository root on ``sys.path`` imports it), not of the ``arch_search`` wheel; ``arch_search``
never imports it."""
