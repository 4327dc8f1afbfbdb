"""Chapter 9's settings (notebooks/09_test_protocol.ipynb): the paper's test protocols (Section
3.2) on a CIFAR-10 analogue, for both profiles, and the tuning record behind their choices.

The quick profile's network (VGG-11-BN at quarter width) with the paper's three-layer head on a
2x2 map ("fc-2x2": the last max-pool dropped), so that a test image larger than 32x32 gives a
class-score map with more than one position. The recipe is the quick profile's on 20,000 images
for 3 epochs (60,000 images seen, 43% of the profile's), so that the chapter trains six networks
(with and without scale jittering, three seeds each) within its time budget.
"""

from dataclasses import dataclass

from ..architecture.model import ModelSpec
from ..evaluation.protocols import protocol_suite
from ..training.recipe import TrainConfig
from .settings import Experiment

CHAPTER_SPEC = ModelSpec(config="A", batch_norm=True, width=0.25, head="fc-2x2", num_classes=10)
CHAPTER_RECIPE = TrainConfig(epochs=3, batch_size=128, lr=0.3, weight_decay=5e-4,
                             label_smoothing=0.1, nesterov=True, tta_flip=True, crop_padding=0)
CHAPTER_TRAIN_IMAGES = 20_000

# Choices of benchmarks/tune_test_protocol.py, on the validation split (the first 2,000 of its
# 5,000 images), seed 0 only, the test set never read; 2026-12-01, the book's 2-core AMD EPYC
# machine, so in fp32 (no bf16 instructions there), one thread, beside other work (the flip then
# averaged logits in the networks' validation, posteriors in the protocols). Typed in here from
# the script's output: a record of runs made once, printed by chapter 9, not re-computed when the
# chapter executes. Each row: (training scale jitter, validation accuracy
# of: single crop, flip, dense Q=40, dense Q=48, dense Q={32,40,48}, dense Q={32,48,64},
# multi-crop {32,40,48}, multi-crop {32,48,64}).
PROTOCOL_TUNING = (
    ("none (S = 32)", 0.6470, 0.6570, 0.5370, 0.4125, 0.6285, 0.6200, 0.6320, 0.6080),
    ("[32, 40]", 0.5935, 0.5980, 0.5780, 0.5235, 0.6095, 0.6085, 0.6210, 0.6115),
    ("[32, 48]", 0.5555, 0.5595, 0.5470, 0.5090, 0.5700, 0.5695, 0.5835, 0.5725),
    ("[32, 64]", 0.4775, 0.4820, 0.4965, 0.4860, 0.5035, 0.4900, 0.5045, 0.5135),
)
# Chosen: jitter [32, 40], the highest of the three jittered rows under every protocol (ahead of
# [32, 48] by 29 to 79 of the 2,000 images, seed 0 only); test scales {32, 40, 48}: under dense
# evaluation at least as high as {32, 48, 64} in every row, but by 17, 2, 1 and 27 images in the
# four rows (two of them within an image or two: a close call, not a settled difference), and
# under multi-crop higher in three rows (by 48, 19, 22 images), lower by 18 in [32, 64].
# tests/experiments/test_test_protocol.py recomputes these margins from the rows above.


@dataclass(frozen=True)
class ProtocolSettings(Experiment):
    """Everything chapter 9 trains and tests with, for one profile."""

    jitter: tuple = (32, 40)        # (S_min, S_max) of the jittered runs
    scales: tuple = (32, 40, 48)    # the test scales Q of the multi-scale protocols
    grid: int = 3                   # multi-crop: grid x grid crops per scale
    protocol_images: int = None     # the first this many test images are evaluated under every
                                    # protocol (None: all)

    def single_scale(self, jitter):
        """The paper's single test scale (Table 3): Q = S for a fixed training scale, the middle
        of [S_min, S_max] for a jittered one."""
        return (jitter[0] + jitter[1]) // 2 if jitter else 32  # CIFAR's 32x32 images

    def suite(self, jitter):
        return protocol_suite(self.scales, self.single_scale(jitter), self.grid)


SETTINGS = {
    "quick": ProtocolSettings(CHAPTER_SPEC, CHAPTER_RECIPE, CHAPTER_TRAIN_IMAGES, validation=5_000,
                                  test_images=None, protocol_images=2_000),
    # not run yet (no GPU here): VGG-16-BN, the full profile's optimiser, 15 epochs
    "full": ProtocolSettings(CHAPTER_SPEC.replace(config="D", width=1.0),
                                 CHAPTER_RECIPE.replace(epochs=15, batch_size=256, lr=0.1), None,
                                 validation=5_000, test_images=None),
}
