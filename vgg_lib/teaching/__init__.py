"""Tools for teaching with the book: the Colab set-up cell, student copies, the exercise list,
run times and grading. Each module has a command line (``python -m vgg_lib.teaching.<name> -h``);
book/instructors.md documents them. They need nbformat, nbclient and PyYAML (requirements.txt)."""
