"""The configurations: Table 1's six columns and the paper's shallow 5x5 control of Section 4.1
(configs.CONTROLS), read everywhere a configuration is."""

import pytest
import torch

from vgg_lib.architecture import configs
from vgg_lib.architecture.configs import CONFIGS, CONTROLS, get_config, merge_3x3_pairs
from vgg_lib.architecture.model import ModelSpec
from vgg_lib.measure.counting import config_costs
from vgg_lib.measure.receptive_field import receptive_fields


# --- the 5x5 control -------------------------------------------------------------------------------

def test_the_control_is_b_with_each_pair_of_3x3_merged_into_one_5x5():
    assert CONTROLS["B-5x5"] == [(64, 5), "M", (128, 5), "M", (256, 5), "M", (512, 5), "M",
                                 (512, 5), "M"]
    assert configs.weight_layer_count("B-5x5") == configs.weight_layer_count("B") - 5


def test_the_six_table_1_columns_stay_six():
    assert list(CONFIGS) == ["A", "A-LRN", "B", "C", "D", "E"]
    assert "B-5x5" not in configs.table_1()


def test_the_control_is_read_everywhere_a_configuration_is():
    assert ModelSpec(config="b-5X5").config == "B-5x5"
    assert get_config("B-5x5") == CONTROLS["B-5x5"]
    model = ModelSpec(config="B-5x5", width=0.125, head="compact", num_classes=10).build()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 5
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # 5x5 weights: 25 per input channel and output channel, against 9 + 9 for a pair of 3x3
    costs, base = config_costs("B-5x5", image_size=32), config_costs("B", image_size=32)
    first = 3 * 64 * 25 + 64  # conv1_1 of the control: 3 -> 64 channels, 5x5, bias
    assert costs.conv_parameters - first == sum(25 * cin * cout + cout for cin, cout in
                                                [(64, 128), (128, 256), (256, 512), (512, 512)])
    assert costs.conv_macs < base.conv_macs


def test_the_control_sees_what_b_sees_at_every_pooling():
    control = {r.name: r.receptive_field for r in receptive_fields("B-5x5", 224)}
    b = {r.name: r.receptive_field for r in receptive_fields("B", 224)}
    assert [control[f"pool{i}"] for i in range(1, 6)] == [b[f"pool{i}"] for i in range(1, 6)]


def test_merging_pairs_refuses_what_has_no_pairing():
    with pytest.raises(ValueError, match="odd number"):
        merge_3x3_pairs(CONFIGS["A"])
    with pytest.raises(ValueError, match="LRN"):
        merge_3x3_pairs(CONFIGS["A-LRN"])
    assert len(merge_3x3_pairs(CONFIGS["E"])) == len(CONFIGS["E"]) - 8
