"""Training VGG (the paper's Section 3.1, chapters 5-6): the recipe (``TrainConfig``), the data
(CIFAR-10's tensors, folders of images), augmentation, the one loop, profiles, checkpoints, data
parallelism, history, reproducibility, initialisation, diagnostics and their plots."""
