"""The end of the pipeline: model comparisons, published-number checks, the ``reports/`` pages and
their matplotlib figures.

The public entry points are re-exported by ``archstat`` itself; this package only groups the modules.
"""
