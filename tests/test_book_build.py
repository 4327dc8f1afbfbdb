"""The site builds from the stored notebook outputs with every Sphinx warning treated as an error."""

import shutil
import subprocess
import sys
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


def test_book_builds_without_warnings(tmp_path):
    # Build a copy so the test neither reads nor leaves a stale _build in the repository.
    source = tmp_path / "book"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("_build", ".git", "*.pt", "checkpoints", "student"))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(source), "--builder", "html",
         "-n", "-W", "--keep-going"],
        capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    html = source / "_build" / "html"
    assert (html / "index.html").exists()
    for page in toc_files()[1:]:
        assert (html / f"{page}.html").exists(), page
    # Notebook pages carry the Colab launch button.
    assert "colab.research.google.com" in (html / "notebooks" / "01_building_vgg.html").read_text()
