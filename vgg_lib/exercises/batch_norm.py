"""Checks for chapter 6, "Training VGG with and without batch normalisation"
(notebooks/06_batch_norm.ipynb). Every expected value is computed by running torch's own layers."""
import torch
from torch import nn

from .registry import Exercise, register
from ..training.initialisation import initialise, predicted_pre_activation_std
from ..architecture.model import vgg


def _redundant_biases(config="D"):
    """Conv biases followed directly by a BatchNorm2d, which subtracts them again."""
    with torch.device("meta"):
        model = vgg(config, batch_norm=True, init_weights=False)
    layers = list(model.features)
    return sum(layer.out_channels for layer, after in zip(layers, layers[1:])
               if isinstance(layer, nn.Conv2d) and isinstance(after, nn.BatchNorm2d))


def _eval_output():
    bn = nn.BatchNorm2d(1)
    with torch.no_grad():
        bn.running_mean.fill_(2.0)
        bn.running_var.fill_(4.0)
        bn.weight.fill_(1.5)
        bn.bias.fill_(0.5)
    bn.eval()
    with torch.no_grad():
        return bn(torch.full((1, 1, 1, 1), 5.0)).item()


def _running_mean_steps(share=0.9, batch_mean=3.0):
    """Training steps until BatchNorm's running mean first reaches ``share`` of the batch mean."""
    bn = nn.BatchNorm1d(1)  # momentum 0.1, running mean starts at 0
    batch = torch.tensor([[batch_mean - 1.0], [batch_mean + 1.0]])
    for step in range(1, 1000):
        bn(batch)
        if bn.running_mean.item() >= share * batch_mean:
            return step
    raise RuntimeError("the running mean never got there")


def _batch_of_two_output():
    generator = torch.Generator().manual_seed(0)
    bn = nn.BatchNorm2d(8).train()
    x = 10 * torch.randn(2, 8, 1, 1, generator=generator) + 3
    return bn(x).abs().mean().item()


def _paper_init_shrink(config="E", std=0.01):
    """conv1_1's input std over the last convolution's, predicted at full width with N(0, std^2)."""
    torch.manual_seed(0)
    model = initialise(vgg(config, num_classes=10, head="compact"), "paper", std=std)
    predicted = list(predicted_pre_activation_std(model).values())
    return predicted[0] / predicted[-1]


register(
    Exercise(
        id="batch_norm/redundant-biases",
        expected=_redundant_biases,
        kind="integer",
        hint="A bias added before batch norm shifts every value of its channel, and batch norm then "
             "subtracts the channel's mean. Count the biases of every convolution that feeds a "
             "BatchNorm2d in VGG-16-BN: one per output channel.",
    ),
    Exercise(
        id="batch_norm/eval-output",
        expected=_eval_output,
        kind="number",
        rel_tol=1e-3,
        hint="In eval mode batch norm uses the running statistics, not the batch's: "
             "weight * (x - running_mean) / sqrt(running_var + eps) + bias, with eps = 1e-5.",
    ),
    Exercise(
        id="batch_norm/running-mean-steps",
        expected=_running_mean_steps,
        kind="integer",
        hint="With momentum 0.1 each training step moves the running mean 10% of the way to the "
             "batch mean, so after k steps it has covered 1 - 0.9**k of the distance from 0.",
    ),
    Exercise(
        id="batch_norm/batch-of-two",
        expected=_batch_of_two_output,
        kind="number",
        rel_tol=1e-3,
        hint="With two values a and b per channel the batch mean is (a + b) / 2 and the (biased) "
             "batch variance is ((a - b) / 2) ** 2. Work out (a - mean) / std.",
    ),
    Exercise(
        id="batch_norm/paper-init-shrink",
        expected=_paper_init_shrink,
        kind="number",
        rel_tol=0.02,
        hint="Each convolution after conv1_1 multiplies the standard deviation by "
             "sqrt(9 * C_in * 0.01**2 / 2), where C_in is its number of input channels; "
             "configuration E has 15 of them. Multiply the 15 factors; the answer is one over "
             "their product.",
    ),
)
