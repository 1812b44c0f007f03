"""The entry points: the CLI (the only module that sees the Hydra config), the report (its
page, ``report``, and its figures, ``figures``), export and the dashboard. Nothing in the package imports ``app``.
"""
