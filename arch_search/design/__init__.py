"""What a design is: ``ArchSpec`` (one encoder, which projections are grouped and how) and
``SearchSpace`` (the choices a search draws from, read from ``spaces/*.yaml``). Imports nothing
of the package but its resources.
"""
