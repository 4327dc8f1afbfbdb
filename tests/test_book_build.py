"""The site builds from the stored notebook outputs with every Sphinx warning treated as an error."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_every_notebook_is_in_the_table_of_contents():
    listed = set(toc_files())
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"notebooks/{notebook.stem}" in listed, f"{notebook.name} is missing from _toc.yml"


def test_book_builds_without_warnings(book_build):
    # The build (of a copy of the repository) is shared with the browser test: see conftest.py.
    result, html = book_build
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert (html / "index.html").exists()
    for page in toc_files()[1:]:
        assert (html / f"{page}.html").exists(), page
    # Notebook pages carry the Colab launch button.
    assert "colab.research.google.com" in (html / "notebooks" / "01_building_vgg.html").read_text()
