"""Finding the book and its chapters, for every teaching command (Colab cell, student copies,
exercise list, run times, grading)."""

import argparse
from pathlib import Path


def find_root(start=None):
    """The folder holding _config.yml: ``start`` or the nearest parent of it (default: cwd)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "_config.yml").is_file():
            return folder
    raise FileNotFoundError(f"No _config.yml in {start} or its parents: run this from the book's "
                            f"repository or pass --root.")


def toc_notebooks(root):
    """The chapter notebooks listed in _toc.yml, in book order."""
    import yaml

    files = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8")))
    return [Path(root) / f"{f}.ipynb" for f in files if (Path(root) / f"{f}.ipynb").is_file()]


def command_line(module_name, doc, actions=None, notebooks=None):
    """The parser of the teaching command ``python -m <module_name>`` (described by ``doc``'s
    first line): exactly one of ``actions`` ({option: help}, each a flag) when given, the
    notebooks (positional, any number) when ``notebooks`` gives their help, and ``--root``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module_name}", description=doc.split("\n")[0])
    if actions:
        action = parser.add_mutually_exclusive_group(required=True)
        for option, text in actions.items():
            action.add_argument(f"--{option}", action="store_true", help=text)
    if notebooks:
        parser.add_argument("notebooks", nargs="*", help=notebooks)
    parser.add_argument("--root", help="the book's repository (default: found from the current folder)")
    return parser


def chapter_command(module_name, doc, markdown_help, markdown, listing, argv=None):
    """Run a teaching command that reads the chapters (the notebooks given on the command line,
    else those in _toc.yml): with ``--markdown``, print ``markdown(notebooks, root)``; else the
    lines ``listing(path)`` gives for each notebook. Returns the exit status."""
    parser = command_line(module_name, doc, notebooks="notebooks (default: the chapters in _toc.yml)")
    parser.add_argument("--markdown", action="store_true", help=markdown_help)
    args = parser.parse_args(argv)
    root = find_root(args.root)
    notebooks = [Path(p) for p in args.notebooks] or toc_notebooks(root)
    if args.markdown:
        print(markdown(notebooks, root), end="")
        return 0
    for path in notebooks:
        for line in listing(path):
            print(line)
    return 0


def all_notebooks(root, paths=()):
    """``paths`` as given, else every notebook in ``notebooks/`` (listed in _toc.yml or not)."""
    return [Path(p) for p in paths] if paths else sorted((Path(root) / "notebooks").glob("*.ipynb"))
