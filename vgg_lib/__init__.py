"""vgg_lib: the code behind the VGG book. Notebooks import it; it never imports them.

The package follows the book's parts (book/contributing.md has the tree and the import rules):
``architecture`` (Table 1 and the model), ``measure`` (chapters 2-4), ``evaluation`` (the test
protocols), ``training`` (chapters 5-6), ``experiments`` (seed statistics, run records, studies
and the experiment chapters' settings), ``inspection`` (chapter 7), ``exercises`` (the
self-checks) and ``teaching`` (the instructors' commands). The names below are the students'
face: ``from vgg_lib import vgg, fit``; a chapter imports every one of them from here.
"""

from .architecture.configs import (CONFIGS, CONTROLS, PAPER_PARAMETERS_MILLIONS, conv_layers,
                                   get_config, parse_config, weight_layer_count)
from .architecture.dense import score_map_size, to_fully_convolutional
from .architecture.model import (VGG, ModelSpec, make_head, make_layers, vgg, vgg11, vgg11_bn,
                                 vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn)
from .architecture.naming import feature_names, layer_order, sliding_layer
from .architecture.weights import load_state_dict_checked, pretrained_vgg
from .device import choose_device, resolve_precision
from .evaluation.engine import evaluate, evaluate_protocols
from .exercises import check
from .experiments.statistics import mean_std, paired, plus_minus, welch
from .experiments.studies import StudyRun, run_study, summarise_study
from .experiments.sweeps import summarise, train_grid
from .inspection.feature_maps import (block_ends, capture_activations, max_activations,
                                      model_input, strongest_channels, top_k_images)
from .measure.conv_stacks import conv_layer_costs, conv_sequence, conv_stack, stack_cost
from .measure.counting import config_costs, costs, count_parameters, layer_table, meta_model
from .measure.gradient_footprint import gradient_footprint
from .measure.receptive_field import receptive_field, receptive_fields
from .measure.shape_trace import shape_walk, trace_shapes
from .glue import glue
from .tables import text_table
from .training.augment import random_crop_flip, random_scale_crop_flip
from .training.checkpoint import (default_checkpoint_dir, keep_checkpoints_on_drive,
                                  load_checkpoint, load_model, read_checkpoint, save_checkpoint)
from .training.cifar10 import load_cifar10
from .training.data import CIFAR10Data
from .training.diagnostics import TrainingProbe, probe_batch
from .training.folders import FolderData, load_image_folder
from .training.history import History
from .training.loop import fit, lr_factor
from .training.plots import plot_augmented_copies, plot_learning_curves
from .training.profiles import format_seconds, get_profile
from .training.recipe import TrainConfig
from .training.reproducibility import seed_everything

__version__ = "0.1.0"
