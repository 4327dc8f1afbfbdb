"""vgg_lib.glue: MyST-NB's glue where it is installed, a quiet stand-in where it is not (Colab)."""

import sys

from vgg_lib import glue


def test_with_myst_nb_the_value_reaches_myst_nb(monkeypatch):
    import myst_nb

    seen = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, variable, display=True: seen.append((name, variable, display)))
    glue("answer", 42, display=False)
    assert seen == [("answer", 42, False)]


def test_without_myst_nb_nothing_is_stored_and_nothing_fails(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # as in Colab: importing it raises ImportError
    assert glue("answer", 42, display=False) is None
    assert capsys.readouterr().out == ""
    glue("answer", 42)  # display=True: shown, as MyST-NB would show it
    assert "42" in capsys.readouterr().out
