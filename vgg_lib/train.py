"""``python -m vgg_lib.train`` (and the console script ``vgg-train``): the command line.

The command itself, with every option, lives in ``vgg_lib.training.command``: the options map one
by one onto the recipe's fields, and only ``training/`` knows those.
"""

import sys

from .training.command import main

if __name__ == "__main__":
    sys.exit(main())
