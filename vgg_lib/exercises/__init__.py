"""One module per chapter, each registering its ``Exercise`` objects with ``vgg_lib.checks``."""
