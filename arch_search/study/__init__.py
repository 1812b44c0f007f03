"""The search as an Optuna study: objectives and trials (``search``), the confirmation of its
front (``confirm``), storage and worker recovery (``storage``), what a run shows (``results``)
and tracking. Imports everything below it, never ``app``.
"""
