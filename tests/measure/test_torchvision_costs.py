"""The book's counter on torchvision's other networks (measure/torchvision_costs.py): parameters
and multiply-adds against torchvision's published figures (chapter 10)."""

import pytest

from vgg_lib.measure.counting import config_costs
from vgg_lib.measure.torchvision_costs import NETWORKS, torchvision_costs


@pytest.mark.parametrize("name", list(NETWORKS))
def test_counter_agrees_with_torchvision_published_figures(name):
    cost = torchvision_costs(name)
    assert cost.parameters == cost.published_parameters
    # torchvision's "GFLOPS" column is, to its three decimals, this book's multiply-add count
    assert round(cost.macs / 1e9, 3) == pytest.approx(cost.published_gflops, abs=1e-9)
    assert cost.flops == 2 * cost.macs and 50 < cost.top1 < 100


def test_torchvision_vgg16_costs_what_the_books_own_vgg16_costs():
    ours = config_costs("D", image_size=224)
    theirs = torchvision_costs("vgg16")
    assert (theirs.parameters, theirs.macs) == (ours.parameters, ours.macs)


def test_torchvision_costs_refuses_unknown_names_and_weights():
    with pytest.raises(ValueError, match="no classification network 'resnet51'"):
        torchvision_costs("resnet51")
    with pytest.raises(ValueError, match="not 'IMAGENET1K_V9'"):
        torchvision_costs("resnet50", weights="IMAGENET1K_V9")
