"""Training on real, shipped data with the lecture's recipe ("How to Train CNNs?", "After Training").

Modules, one concern each: ``data`` (digits / ImageFolder splits, train-split normalisation, a test
split fixed apart from the seed), ``sources`` (a non-digit source task for transfer), ``augment``
(seeded tensor transforms), ``optim`` (optimizers, schedules), ``loop`` and ``state`` (the training
loop and its steps), ``ema`` (Polyak averaging with decay warm-up), ``checkpoint`` (``--save``,
atomic writes, ``weights_only`` loads), ``checks`` (sanity checks), ``search`` and ``recipe``
(hyper-parameter search), ``diagnose`` (reading curves), ``ensemble``, ``tta`` and ``transfer``
(after training), ``dist`` (torchrun / DDP plumbing).
"""
