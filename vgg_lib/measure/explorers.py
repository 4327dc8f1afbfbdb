"""Explorers a student can play with: a live ipywidgets version (Jupyter, Colab) and a static twin
that plays in a browser without a kernel (the book's website). Both draw with the same function.
"""

import io

from matplotlib.animation import FuncAnimation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .receptive_field_plots import draw_stack, explorer_stack, fitting_input_size

KERNELS = (1, 3, 5, 7)
MAX_LAYERS = 6
FIGSIZE = (8, 3.2)


def _figure(dpi):
    figure = Figure(figsize=FIGSIZE, dpi=dpi)
    FigureCanvasAgg(figure)  # drawn off-screen: nothing leaks into the notebook's outputs
    return figure


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _describe(kernel, layers, pooling):
    pools = "on" if pooling else "off"
    return f"kernel {kernel}x{kernel}, {layers} layer{'s' * (layers != 1)}, pooling {pools}"


def receptive_field_explorer(kernel=3, layers=3, pooling=False, dpi=80):
    """A live explorer: pick the kernel size, the number of convolutions and whether a 2x2
    max-pool follows every second convolution; see which units feed the centre output unit and
    which input pixels get a gradient. Needs a running kernel (Jupyter, Colab)."""
    if kernel not in KERNELS or not 1 <= layers <= MAX_LAYERS:
        raise ValueError(f"The explorer offers kernels {KERNELS} and 1 to {MAX_LAYERS} layers; "
                         f"got kernel={kernel!r}, layers={layers!r}.")
    try:
        import ipywidgets as widgets  # optional (vgg_lib[widgets]): the static twin needs none
    except ImportError as error:
        raise ImportError("The live explorer needs ipywidgets: pip install ipywidgets "
                          "(or use receptive_field_animation, which needs no kernel).") from error

    class Explorer(widgets.VBox):
        def __repr__(self):  # what nbval and text-only front ends see: no widget ids
            return f"Receptive-field explorer ({_describe(*self.settings)})"

    kernel_choice = widgets.Dropdown(options=KERNELS, value=kernel, description="kernel")
    depth = widgets.IntSlider(value=layers, min=1, max=MAX_LAYERS, description="layers")
    pooling_box = widgets.Checkbox(value=pooling, description="2×2 pool after every 2nd conv")
    picture = widgets.Image(format="png")
    figure = _figure(dpi)
    explorer = Explorer([widgets.HBox([kernel_choice, depth, pooling_box]), picture])

    def redraw(_=None):
        explorer.settings = (kernel_choice.value, depth.value, pooling_box.value)
        draw_stack(figure, explorer_stack(*explorer.settings))
        picture.value = _png(figure)

    for control in (kernel_choice, depth, pooling_box):
        control.observe(redraw, names="value")
    redraw()
    return explorer


def receptive_field_animation(kernel=3, max_layers=5, pooling=False, dpi=80, fps=1):
    """The explorer's static twin: one frame per depth 1..``max_layers``, played by a slider in
    any browser, no kernel needed. Returns HTML (show it with ``IPython.display.HTML``) holding
    matplotlib's JavaScript player and a caption that lists every frame's numbers as text."""
    if not 1 <= max_layers <= 12:
        raise ValueError(f"max_layers must be between 1 and 12 (each layer adds a frame), got {max_layers}.")
    stacks = [explorer_stack(kernel, n, pooling) for n in range(1, max_layers + 1)]
    input_size = fitting_input_size(stacks)
    figure = _figure(dpi)
    counts = {}

    def frame(index):
        counts[index] = draw_stack(figure, stacks[index], input_size)
        return []

    animation = FuncAnimation(figure, frame, frames=len(stacks), init_func=lambda: [], blit=False)
    player = animation.to_jshtml(fps=fps, default_mode="once", embed_frames=True)
    rows = "".join(f"<tr><td>{n + 1}</td><td>{field}×{field}</td><td>{pixels}</td></tr>"
                   for n, (field, pixels) in sorted(counts.items()))
    pools = "a 2×2 max-pool after every second convolution" if pooling else "no pooling"
    caption = (f"<p>{kernel}×{kernel} convolutions, {pools}: one frame per depth, 1 to "
               f"{max_layers} layers, on a {input_size}×{input_size} input.</p>"
               "<table><tr><th>layers</th><th>receptive field (formula)</th>"
               "<th>input pixels with a gradient (autograd)</th></tr>" + rows + "</table>")
    return player + caption
