"""The Colab set-up cell: generated from _config.yml, kept in step in every chapter, and doing
the right thing inside and outside Colab (the real install is tested in test_colab_standin.py)."""

import ast
import contextlib
import io
import os
import sys
import types
from pathlib import Path

import nbformat
import pytest
import torch

from vgg_lib.teaching import colab

REPO = Path(__file__).resolve().parents[2]


def _book(tmp_path, url="https://github.com/someone/some-book", branch="trunk", notebooks=()):
    config = "title: t\nrepository:\n" + (f"  url: {url}\n" if url else "") + f"  branch: {branch}\n"
    (tmp_path / "_config.yml").write_text(config)
    (tmp_path / "notebooks").mkdir()
    for name, nb in notebooks:
        nbformat.write(nb, tmp_path / "notebooks" / name)
    return tmp_path


def _notebook(*cells):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter"), *cells])


def _run_cell(source, monkeypatch, in_colab, gpu=False):
    """Execute the cell's code in this process; returns (printed text, VGG_PROFILE)."""
    # setenv first, so that monkeypatch records the original state and restores it afterwards
    # (a bare delenv of an unset variable records nothing, and the cell's own assignment would
    # leak into every later test and into nbval's kernels).
    monkeypatch.setenv("VGG_PROFILE", "unset-by-test")
    monkeypatch.delenv("VGG_PROFILE")
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Tesla T4")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "colab-setup", "exec"), {})
    return out.getvalue(), os.environ.get("VGG_PROFILE")


def test_the_install_url_comes_from_the_config(tmp_path):
    root = _book(tmp_path)
    assert colab.install_url(root) == "git+https://github.com/someone/some-book@trunk"
    source = colab.setup_cell_source(colab.install_url(root))
    assert source.count("vgg_lib @ git+https://github.com/someone/some-book@trunk") == 1
    ast.parse(source)


def test_a_missing_repository_url_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="repository.url"):
        colab.install_url(_book(tmp_path, url=None))
    with pytest.raises(ValueError, match="pip git URL"):
        colab.setup_cell_source("https://github.com/x/y")


def test_outside_colab_the_cell_prints_nothing_and_sets_nothing(monkeypatch):
    source = colab.setup_cell_source(colab.install_url(REPO))
    assert _run_cell(source, monkeypatch, in_colab=False, gpu=True) == ("", None)


def test_in_colab_with_a_gpu_it_picks_the_full_profile(monkeypatch):
    # vgg_lib is importable here, so the cell skips pip, as it does when re-run in a Colab session
    source = colab.setup_cell_source(colab.install_url(REPO))
    printed, profile = _run_cell(source, monkeypatch, in_colab=True, gpu=True)
    assert profile == "full" and "Tesla T4" in printed


def test_in_colab_without_a_gpu_it_says_how_to_attach_one(monkeypatch):
    source = colab.setup_cell_source(colab.install_url(REPO))
    printed, profile = _run_cell(source, monkeypatch, in_colab=True, gpu=False)
    assert profile == "quick" and "Runtime → Change runtime type → GPU" in printed


def test_sync_rewrites_a_stale_cell_and_keeps_its_place(tmp_path):
    stale = nbformat.v4.new_code_cell("print('old set-up')", metadata={"tags": ["colab-setup", "hide-input"]},
                                      execution_count=1, outputs=[nbformat.v4.new_output("stream", text="old\n")])
    body = nbformat.v4.new_code_cell("x = 1", execution_count=2)
    root = _book(tmp_path, notebooks=[("01_a.ipynb", _notebook(stale, body))])
    path = root / "notebooks" / "01_a.ipynb"
    assert colab.main(["--check", "--root", str(root)]) == 1
    assert colab.main(["--sync", "--root", str(root)]) == 0
    cell = nbformat.read(path, as_version=4).cells[1]
    assert cell.source == colab.setup_cell_source(colab.install_url(root))
    assert (cell.id, cell.execution_count, cell.outputs, cell.metadata.tags) == \
           (stale.id, 1, [], ["colab-setup", "hide-input"])
    assert cell.metadata.mystnb["code_prompt_show"].startswith("Colab set-up")
    assert colab.main(["--check", "--root", str(root)]) == 0
    before = path.read_text()
    colab.main(["--sync", "--root", str(root)])
    assert path.read_text() == before  # idempotent


def test_sync_inserts_the_cell_before_the_first_code_cell(tmp_path, capsys):
    nb = _notebook(nbformat.v4.new_markdown_cell("Intro."), nbformat.v4.new_code_cell("x = 1"),
                   nbformat.v4.new_code_cell("# misplaced", metadata={"tags": ["colab-setup"]}))
    root = _book(tmp_path, notebooks=[("02_b.ipynb", nb)])
    colab.main(["--sync", "--root", str(root)])
    assert "re-execute it" in capsys.readouterr().out
    cells = nbformat.read(root / "notebooks" / "02_b.ipynb", as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "markdown", "code", "code"]
    assert cells[2].metadata.tags == ["colab-setup", "hide-input"] and cells[3].source == "x = 1"
    assert cells[2].metadata.mystnb == colab.FOLDED["mystnb"]
    assert colab.main(["--check", "--root", str(root)]) == 0


def test_an_unfolded_cell_is_reported_and_folded_without_touching_the_rest(tmp_path, capsys):
    root = _book(tmp_path)
    cell = nbformat.v4.new_code_cell(colab.setup_cell_source(colab.install_url(root)), execution_count=1,
                                     metadata={"tags": ["colab-setup"], "mystnb": {"other": 1}})
    nbformat.write(_notebook(cell, nbformat.v4.new_code_cell("x = 1", execution_count=2)),
                   root / "notebooks" / "01_a.ipynb")
    assert colab.main(["--check", "--root", str(root)]) == 1
    assert "is not folded on the site" in capsys.readouterr().out
    colab.main(["--sync", "--root", str(root)])
    synced = nbformat.read(root / "notebooks" / "01_a.ipynb", as_version=4).cells[1]
    assert (synced.id, synced.source, synced.execution_count) == (cell.id, cell.source, 1)
    assert synced.metadata.tags == ["colab-setup", "hide-input"]
    assert synced.metadata.mystnb == {"other": 1, **colab.FOLDED["mystnb"]}
    assert colab.main(["--check", "--root", str(root)]) == 0


def test_check_names_what_is_wrong(tmp_path, capsys):
    untagged = _notebook(nbformat.v4.new_code_cell("import vgg_lib"))
    root = _book(tmp_path, notebooks=[("03_c.ipynb", untagged), ("04_d.ipynb", _notebook())])
    assert colab.main(["--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "03_c.ipynb: its first code cell (cell 1) is not tagged 'colab-setup'" in out
    assert "04_d.ipynb: has no code cell" in out and "--sync" in out


def test_every_chapter_has_the_current_setup_cell():
    assert colab.main(["--check", "--root", str(REPO)]) == 0, \
        "a chapter's Colab cell is stale: run python -m vgg_lib.teaching.colab --sync"
