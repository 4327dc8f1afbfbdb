"""VGG's features beyond the task they were trained on (chapter 11; the paper's Appendix B,
"Generalisation of very deep features"): a class split of CIFAR-10 into a source and a target
task, pooled block features, linear probes, fine-tuning, perceptual distances and texture
synthesis from Gram matrices."""
