"""Chapter 11's settings (vgg_lib/experiments/transfer_features.py)."""

import json

import pytest

from vgg_lib.experiments.transfer_features import SETTINGS, TARGET_LR_TUNING


def test_settings_need_a_recipe_for_every_budget_and_are_plain_data():
    quick = SETTINGS["quick"]
    with pytest.raises(ValueError, match=r"budget\(s\) \[100, None\]"):
        quick.replace(fine_tune={10: quick.recipe})
    for settings in SETTINGS.values():
        text = json.dumps(settings.to_dict())
        assert settings.name in text
        assert len(settings.seeds) >= 5   # every comparison the chapter draws rests on five seeds


def test_the_chosen_learning_rates_are_the_best_of_their_record():
    means = {}
    for method, budget, lr, values in TARGET_LR_TUNING:
        means.setdefault((method, budget), {})[lr] = sum(values) / len(values)
    full, quick = SETTINGS["full"], SETTINGS["quick"]
    assert {budget for _, budget in means} == set(full.budgets)
    for (method, budget), by_lr in means.items():
        recipes = full.fine_tune if method == "fine-tune" else full.scratch
        assert recipes[budget].lr == max(by_lr, key=by_lr.get), (method, budget)
        assert quick.fine_tune[budget].lr == full.fine_tune[budget].lr
        assert quick.scratch[budget].lr == full.scratch[budget].lr


def test_the_shipped_seeds_are_the_quick_settings_in_fp32_on_one_thread_with_their_networks():
    """results/transfer-quick/ holds a record and the pretrained network of every seed of the
    quick settings, of those very settings (the data's fingerprints aside, which chapter 11's
    nbval run checks: all five read), computed in fp32 on one thread; each network is the one
    its record's numbers were derived from."""
    from pathlib import Path
    from types import SimpleNamespace

    from vgg_lib.experiments.networks import network_digest
    from vgg_lib.experiments.runs import read_record
    from vgg_lib.training.checkpoint import load_model
    from vgg_lib.transfer import study

    quick = SETTINGS["quick"]
    folder = Path(__file__).resolve().parents[2] / "results" / study.study_name(quick)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"seed{s}.json" for s in quick.seeds] + [f"source_seed{s}.pt" for s in quick.seeds])
    no_data = SimpleNamespace(fingerprint=lambda: None)
    for seed in quick.seeds:
        record = read_record(folder / f"seed{seed}.json")
        wanted = study.seed_identity(quick, no_data, no_data, seed)
        assert {k: v for k, v in record.identity.items() if k not in ("data", "target")} == \
            {k: v for k, v in wanted.items() if k not in ("data", "target")}, seed
        assert record.precision == "fp32" and record.threads == 1, seed
        network = load_model(folder / f"source_seed{seed}.pt")
        assert network_digest(network) == record.metrics["network_sha256"], seed
