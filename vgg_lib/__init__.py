"""vgg_lib: the code behind the VGG book. Notebooks import it; it never imports them.

The package follows the book's parts (book/contributing.md has the tree and the import rules):
``architecture`` (Table 1 and the model), ``measure`` (chapters 2-4), ``training`` (chapters
5-6), ``inspection`` (chapter 7), ``exercises`` (the self-checks) and ``teaching`` (the
instructors' commands). The names below are the students' face: ``from vgg_lib import vgg, fit``.
"""

from .architecture.configs import CONFIGS, PAPER_PARAMETERS_MILLIONS, get_config
from .architecture.model import (VGG, make_layers, vgg, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16,
                                 vgg16_bn, vgg19, vgg19_bn)
from .architecture.naming import feature_names
from .architecture.spec import ModelSpec
from .architecture.weights import load_state_dict_checked, pretrained_vgg
from .device import choose_device
from .exercises import check
from .inspection.feature_maps import (block_ends, capture_activations, max_activations,
                                      strongest_channels, top_k_images)
from .measure.conv_stacks import conv_layer_costs, conv_sequence, conv_stack, stack_cost
from .measure.counting import config_costs, costs, count_parameters, layer_table, meta_model
from .measure.receptive_field import receptive_field, receptive_fields
from .measure.shape_trace import shape_walk, trace_shapes
from .tables import text_table
from .training.checkpoint import default_checkpoint_dir, load_checkpoint, load_model, save_checkpoint
from .training.data import CIFAR10Data, load_cifar10
from .training.diagnostics import TrainingProbe, probe_batch
from .training.history import History
from .training.loop import evaluate, fit
from .training.profiles import get_profile
from .training.recipe import TrainConfig
from .training.reproducibility import seed_everything

__version__ = "0.1.0"
