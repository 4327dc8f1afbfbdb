"""Testing VGG (the paper's Section 3.2, chapter 9): the protocols (single crop, flip, dense,
multi-crop) and the one engine that runs them on CIFAR's tensors and on folders of images."""
