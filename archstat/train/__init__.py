"""Training on real, shipped data with the lecture's recipe ("How to Train CNNs?", "After Training").

Modules, one concern each: ``data`` (digits / ImageFolder splits, train-split normalisation),
``augment`` (seeded tensor transforms), ``loop`` (the training loop), ``checks`` (sanity checks),
``search`` (hyper-parameter search), ``diagnose`` (reading curves), ``after`` (ensembles, EMA,
transfer, test-time augmentation), ``dist`` (torchrun / DDP plumbing).
"""
