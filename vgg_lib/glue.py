"""``glue(name, value, display=True)``: MyST-NB's ``glue`` where MyST-NB is installed, so that the
book's build puts a computed value into the prose ({glue:text}`name`); elsewhere (Colab, a plain
Jupyter) a stand-in with the same signature that stores nothing: there the prose shows the role
as written and the cells print the numbers themselves."""


def glue(name, variable, display=True):
    try:
        from myst_nb import glue as myst_glue  # here, not at import: MyST-NB loads Sphinx, seconds
    except ImportError:  # no MyST-NB (Colab): nothing to store the value for
        if display:
            from IPython.display import display as show  # only a notebook asks to display
            show(variable)
        return None
    return myst_glue(name, variable, display)
