"""Measurements joined to the symbolic table: timing (CUDA events / perf_counter), per-op-call times,
measured device ceilings, the roofline, the timed training step.

The public entry points are re-exported by ``archstat`` itself; this package only groups the modules.
"""
