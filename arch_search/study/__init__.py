"""The search as an Optuna study: objectives and trials (``search``), how a trial draws its
design (``sampling``), what a run prints (``console``), the confirmation of its front
(``confirm``), storage and worker recovery (``storage``), what a trial holds (``record``), the
Pareto front and hypervolume (``front``), the run's tables and files (``run_tables``) and
tracking. Imports everything below it, never ``app``.
"""
