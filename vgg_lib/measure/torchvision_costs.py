"""What VGG costs against the networks that replaced it: this book's own counter (a shape trace
with hooks, ``counting.layer_macs``) applied to torchvision's builders, beside the figures
torchvision publishes with its ImageNet weights.

The networks are built with ``weights=None`` on the meta device: real shapes and parameter
counts, no download, no memory. The published figures (top-1 and top-5 accuracy on ImageNet-1K's
validation set, parameters, and the column torchvision's documentation heads "GFLOPS") are read
from the weights' own metadata (``torchvision.models.get_model_weights(name)[...].meta``), which
ships with torchvision: nothing is downloaded.

Multiply-adds, not FLOPs: a multiply-add is one multiplication and one addition, so FLOPs are
twice the multiply-adds (``counting``'s definitions). What the literature calls "FLOPs" for these
networks is mostly the multiply-add count (He et al. 2016 write "3.6 billion FLOPs
(multiply-adds)" for their 34-layer net); ``NetworkCost.flops`` doubles the count.
"""

from dataclasses import dataclass

import torch
import torchvision

from .counting import count_parameters, layer_macs
from .shape_trace import trace_shapes

# torchvision builder -> the name of the network in the text
NETWORKS = {"vgg16": "VGG-16", "vgg19": "VGG-19", "resnet18": "ResNet-18",
            "resnet34": "ResNet-34", "resnet50": "ResNet-50", "efficientnet_b0": "EfficientNet-B0"}


@dataclass(frozen=True)
class NetworkCost:
    """One network at one input size: what this book's counter finds, and what torchvision
    publishes for the weights ``weights`` (accuracy in %, on ImageNet-1K's validation images)."""

    name: str                   # torchvision's builder name, e.g. "resnet50"
    image_size: int
    parameters: int             # counted: sum of the parameters' sizes
    macs: int                   # counted: multiply-adds of one forward pass of one image
    conv_macs: int
    weights: str                # e.g. "IMAGENET1K_V1"
    published_parameters: int   # torchvision's "num_params"
    published_gflops: float     # torchvision's "GFLOPS" column (224x224)
    top1: float
    top5: float

    @property
    def label(self):
        return NETWORKS.get(self.name, self.name)

    @property
    def flops(self):
        """Floating-point operations of one forward pass: two per multiply-add."""
        return 2 * self.macs


def torchvision_costs(name, image_size=224, weights="IMAGENET1K_V1"):
    """``NetworkCost`` of torchvision's ``name`` (e.g. "vgg16", "resnet50", "efficientnet_b0")
    for one ``image_size`` image, counted by this book's shape trace, with torchvision's
    published figures for its weights ``weights`` ("IMAGENET1K_V1": the weights that reproduce
    each network's paper; some networks also have "IMAGENET1K_V2", a later training recipe)."""
    try:
        builder = torchvision.models.get_model_builder(name)
        available = torchvision.models.get_model_weights(name)
    except ValueError as error:
        raise ValueError(f"torchvision has no classification network {name!r}; try one of "
                         f"{', '.join(NETWORKS)}.") from error
    if weights not in available.__members__:
        raise ValueError(f"torchvision publishes {name} weights {', '.join(available.__members__)}, "
                         f"not {weights!r}.")
    with torch.device("meta"):  # shapes only: no memory, no initialisation time, no download
        model = builder(weights=None)
    trace = trace_shapes(model, image_size)
    meta = available[weights].meta
    metrics = meta["_metrics"]["ImageNet-1K"]
    return NetworkCost(name=name, image_size=image_size, parameters=count_parameters(model),
                       macs=sum(layer_macs(layer) for layer in trace),
                       conv_macs=sum(layer_macs(layer) for layer in trace.of_kind("conv")),
                       weights=weights, published_parameters=meta["num_params"],
                       published_gflops=meta["_ops"], top1=metrics["acc@1"],
                       top5=metrics["acc@5"])
