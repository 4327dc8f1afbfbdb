"""vgg_lib: the code behind the VGG book. Notebooks import it; it never imports them."""

from .configs import CONFIGS, PAPER_PARAMETERS_MILLIONS, get_config
from .model import (VGG, make_layers, vgg, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn,
                    vgg19, vgg19_bn)
from .weights import load_state_dict_checked, pretrained_vgg
from .counting import count_parameters, config_costs, costs, layer_table, meta_model
from .shape_trace import shape_walk, trace_shapes
from .conv_stacks import conv_layer_costs, conv_sequence, conv_stack, stack_cost
from .receptive_field import receptive_field, receptive_fields
from .feature_maps import block_ends, capture_activations, max_activations, strongest_channels, top_k_images
from .checks import check
from .data import CIFAR10Data, load_cifar10
from .train import evaluate, fit
from .history import History
from .profiles import choose_device, get_profile
from .reproducibility import seed_everything
from .checkpoint import default_checkpoint_dir, load_checkpoint, save_checkpoint
from .diagnostics import TrainingProbe, probe_batch

__version__ = "0.1.0"
