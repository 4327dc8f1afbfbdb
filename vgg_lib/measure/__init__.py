"""Measuring VGG without training it (chapters 2-4): shape traces, parameter and multiply-add
counts, saved-tensor memory, receptive fields, gradient footprints, their plots and explorers."""
