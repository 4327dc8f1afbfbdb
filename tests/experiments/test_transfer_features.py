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
