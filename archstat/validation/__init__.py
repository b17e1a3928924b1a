"""Checks of the symbolic numbers against the real model: one real forward (and backward) pass,
fvcore and FlopCounterMode as oracles, saved-tensor hooks for memory, gradients for receptive fields.

The public entry points are re-exported by ``archstat`` itself; this package only groups the modules.
"""
