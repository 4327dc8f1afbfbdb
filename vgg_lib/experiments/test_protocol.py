"""Chapter 9's settings (notebooks/09_test_protocol.ipynb): the paper's test protocols (Section
3.2) on a CIFAR-10 analogue, for both profiles, and the tuning record behind their choices.

The quick profile's network (VGG-11-BN at quarter width) with the paper's three-layer head on a
2x2 map ("fc-2x2": the last max-pool dropped), so that a test image larger than 32x32 gives a
class-score map with more than one position. The recipe is the quick profile's on 20,000 images
for 3 epochs (60,000 images seen, 43% of the profile's), so that a reader without the book's
records can train the chapter's ten networks (with and without scale jittering, five seeds each)
on a CPU. Each run is a study run (``protocol_study_plan``) whose record also keeps its network's
evaluation under every protocol of its suite (``ProtocolEvaluation``).
"""

from dataclasses import asdict, dataclass

from ..architecture.model import ModelSpec
from ..evaluation.engine import evaluate_protocols
from ..evaluation.protocols import protocol_suite
from ..training.recipe import TrainConfig
from .settings import Experiment
from .studies import StudyRun

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

    def evaluation(self, jitter):
        """The protocol evaluation of a network trained with ``jitter`` (None: fixed S = 32)."""
        return ProtocolEvaluation(tuple(self.scales), self.single_scale(jitter), self.grid,
                                  self.protocol_images)


@dataclass(frozen=True)
class ProtocolEvaluation:
    """The six protocols of ``protocol_suite(scales, single_scale, grid)``, on the first
    ``images`` test images (None: all), of a network a study run has just trained
    (``StudyRun.derive``): its record keeps ``{"protocols": {name: {"accuracy", "loss", "macs",
    "views", "images"}}}`` in its metrics, and these settings in its identity."""

    scales: tuple
    single_scale: int
    grid: int
    images: int = None

    def identity(self):
        return {"protocols": {"split": "test", "scales": list(self.scales),
                              "single_scale": self.single_scale, "grid": self.grid,
                              "images": self.images}}

    def __call__(self, model, data, precision="auto"):
        results = evaluate_protocols(model, data, protocol_suite(self.scales, self.single_scale, self.grid),
                                     split="test", limit=self.images, precision=precision, progress=False)
        return {"protocols": {name: asdict(result) for name, result in results.items()}}


def protocol_study_plan(settings):
    """The chapter's runs: for each seed, the network trained at the fixed scale S = 32 (label
    "fixed") and with scale jittering (``settings.jitter``, label "jittered"), each evaluated under
    every protocol of its suite (``settings.suite``) when it has trained."""
    jitters = {"fixed": None, "jittered": tuple(settings.jitter)}
    return [StudyRun(label, settings.spec, settings.recipe.replace(seed=seed, scale_jitter=jitter),
                     derive=settings.evaluation(jitter))
            for label, jitter in jitters.items() for seed in settings.seeds]


def protocol_study_name(profile_name):
    """The study of a profile's runs, "test_protocol_<profile>": the chapter keeps them in
    ``studies.study_folder`` of that name; the book ships the quick profile's records (fp32, one
    thread, ``make results CHAPTER=9``) in ``results/test_protocol_quick/``."""
    return f"test_protocol_{profile_name}"


# Five seeds per training regime: with three, several of the protocol comparisons the chapter
# draws were under four standard errors (issue 21). The book ships the quick profile's ten runs
# as records (results/test_protocol_quick/), so CI does not pay for them; a reader without the
# records trains all ten.
SEEDS = (0, 1, 2, 3, 4)

SETTINGS = {
    "quick": ProtocolSettings(CHAPTER_SPEC, CHAPTER_RECIPE, CHAPTER_TRAIN_IMAGES, validation=5_000,
                                  test_images=None, seeds=SEEDS, protocol_images=2_000),
    # not run yet (no GPU here): VGG-16-BN, the full profile's optimiser, 15 epochs
    "full": ProtocolSettings(CHAPTER_SPEC.replace(config="D", width=1.0),
                                 CHAPTER_RECIPE.replace(epochs=15, batch_size=256, lr=0.1), None,
                                 validation=5_000, test_images=None, seeds=SEEDS),
}
