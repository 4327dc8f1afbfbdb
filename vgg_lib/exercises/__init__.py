"""The book's self-checked exercises: the registry, the checking, and the catalogue.

``check("<notebook name>/<exercise>", answer)`` is what a starter cell calls. Importing this
package imports the engine first and then every chapter's catalogue module, each of which
registers its exercises; the engine never imports the catalogue.
"""

from .checking import CheckResult, check, grade
from .registry import Exercise, exercise_ids, get_exercise, register

# The catalogue, one module per chapter, named like its notebook (NN_<name>.ipynb -> <name>.py).
from . import (batch_norm, building_vgg, depth_study, layer_by_layer,  # noqa: E402,F401
               receptive_fields, residual_networks, small_filters, test_protocol,
               training_cifar10, transfer_features, visualising_vgg)

CHAPTER_MODULES = ("building_vgg", "receptive_fields", "small_filters", "layer_by_layer",
                   "training_cifar10", "batch_norm", "visualising_vgg", "depth_study",
                   "test_protocol", "residual_networks", "transfer_features")
