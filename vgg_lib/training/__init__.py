"""Training VGG (chapters 5-6): the recipe (``TrainConfig``), data, augmentation, the loop, profiles,
checkpoints, history, reproducibility, initialisation, diagnostics, sweeps and their plots."""
