"""Measurements joined to the symbolic table: timing (CUDA events / perf_counter), per-op-call times,
measured device ceilings (``ceilings``, cached by ``cache``), the per-family time model (``op_families``,
``microbench``, ``calibrate``, ``time_model``), the roofline that joins them to the measured times, the
timed training step.

The public entry points are re-exported by ``archstat`` itself; this package only groups the modules.
"""
