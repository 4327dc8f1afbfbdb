"""What several test modules share: small datasets a tiny VGG learns in a few steps, tiny
models, files in the shapes the package reads. Not a test module (pytest collects test_*.py);
tests import it as ``support`` (tests/ is on sys.path, as the folder of the root conftest.py)."""

import importlib.util
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vgg_lib import CIFAR10Data, seed_everything, vgg

ROOT = Path(__file__).resolve().parents[1]  # the repository


def load_benchmark(name):
    """The script benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def colour_data(n_train=96, n_test=40, seed=0, n_val=40):
    """A task a tiny VGG learns in a few steps: class c brightens colour channel c % 3 in one of
    three stripes chosen by c // 3 (with noise), so only 9 classes appear."""
    generator = torch.Generator().manual_seed(seed)

    def make(n):
        labels = torch.arange(n) % 9
        images = torch.randint(0, 100, (n, 3, 32, 32), generator=generator)
        for i, c in enumerate(labels.tolist()):
            rows = slice(10 * (c // 3), 10 * (c // 3) + 10)
            images[i, c % 3, rows] += 150
        return images.to(torch.uint8), labels

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    x_val, y_val = make(n_val)
    return CIFAR10Data(x_train, y_train, x_test, y_test, classes=[str(i) for i in range(10)],
                       source="synthetic", mean=(0.3, 0.3, 0.3), std=(0.25, 0.25, 0.25),
                       x_val=x_val, y_val=y_val)


def tiny_model(seed=0, batch_norm=True, config="A"):
    seed_everything(seed)
    return vgg(config, batch_norm=batch_norm, head="compact", width=0.125, num_classes=10)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


SETTINGS = dict(epochs=3, lr=0.05, batch_size=32, label_smoothing=0.1, progress=False,
                precision="fp32")
# every airbench setting of the recipe switched on (vgg_lib/training/airbench.py)
AIRBENCH = dict(whiten_first_layer=True, dirac_init=True, bn_scale=False, bn_bias_lr=8.0,
                bn_momentum=0.4, lookahead=True, alternating_flip=True)


TRAIN_IMAGES = 288  # synthetic_npz's training images


def synthetic_npz(path, seed=0):
    """A CIFAR-shaped npz file (``TRAIN_IMAGES`` training and 64 test images) with the colour task
    of ``colour_data``."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % 9
        images = rng.integers(0, 100, (n, 32, 32, 3))
        for i, c in enumerate(labels):
            images[i, 10 * (c // 3):10 * (c // 3) + 10, :, c % 3] += 150
        return images.astype(np.uint8), labels.astype(np.uint8)

    x_train, y_train = make(TRAIN_IMAGES)
    x_test, y_test = make(64)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def make_folder(root, classes=3, train=8, val=4, size=(40, 48)):
    """A tiny ImageFolder: class c is a JPEG whose colour channel c is bright, with noise."""
    from PIL import Image  # PIL only where a test writes JPEGs

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 90, (*size, 3))
                pixels[..., c] += 150
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def randomise_batch_norm(model):
    """Running statistics unlike a fresh batch norm's, so that eval mode really differs."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
    return model


@contextmanager
def exercises_registered(*exercises):
    """The exercises in the package's registry for the duration of a ``with`` block (a fixture of
    any scope yields inside one); their ids are given to the block and removed afterwards."""
    from vgg_lib.exercises import register, registry

    register(*exercises)
    try:
        yield [exercise.id for exercise in exercises]
    finally:
        for exercise in exercises:
            registry._REGISTRY.pop(exercise.id, None)


def assert_shipped_records(study, runs, precision, threads):
    """``results/<study>/`` holds one record per run of ``runs`` (``StudyRun``s) and nothing
    else, each of that very run (label, spec, recipe, training images and, for a run that derives
    numbers, their settings, compared as JSON stores them; the data's fingerprint aside, which the
    chapter's nbval run checks when it reads them all), made in ``precision`` on ``threads``
    threads. Returns ``{run name: RunRecord}`` for a caller's further checks."""
    import json

    from vgg_lib.experiments.runs import read_record

    folder = ROOT / "results" / study
    runs = {run.name: run for run in runs}
    shipped = sorted(p.stem for p in folder.glob("*.json"))
    assert shipped == sorted(runs)
    records = {}
    for name, run in runs.items():
        record = records[name] = read_record(folder / f"{name}.json")
        wanted = {"label": run.label, "spec": run.spec.to_dict(), "recipe": run.recipe.to_dict(),
                  "train_images": run.train_images}
        if run.derive is not None:
            wanted["derived"] = run.derive.identity()
        wanted = json.loads(json.dumps(wanted))   # a tuple (scale_jitter) is stored as a list
        assert {key: record.identity[key] for key in wanted} == wanted, name
        assert record.precision == precision and record.threads == threads, name
    return records
