"""Where, when and how each chapter was last executed: a stamp in the notebook, a table for the site.

    python -m vgg_lib.teaching.execution --stamp notebooks/05_training_cifar10.ipynb
    python -m vgg_lib.teaching.execution --clean notebooks/05_training_cifar10.ipynb
    python -m vgg_lib.teaching.execution --markdown     # the table of book/execution.md

``make notebooks`` runs ``--stamp`` right after ``jupyter execute`` has stored a chapter's outputs.
It records, in ``metadata.vgg_execution``, the training profile (``$VGG_PROFILE``, or the default
for the machine), the machine (CPU model, cores, GPU if any) and the Python, torch and torchvision
versions of the environment that ran the kernel. It then cleans up what only a live kernel can
show (``--clean`` does only this part):

* a tqdm progress bar (``tqdm.auto`` in a kernel shows an ipywidgets bar) becomes its final line
  of text, rebuilt from the stored widget state, so the static page shows "100%|...| 546/546 ...";
* the notebook's widget state is dropped unless an output the site shows still needs it (an
  output hidden with ``remove-output`` renders nothing, so its state would only make the page
  load a widget manager for nothing).

When a chapter last ran and how long it took come from nbclient's own per-cell timestamps.
The table is regenerated with the instructors' page: python -m vgg_lib.teaching.instructors_page
--write (and checked with --check, as the test suite does).
"""

import html
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from ..device import cpu_model
from . import runtimes
from .notebooks import command_line, find_root, toc_notebooks

KEY = "vgg_execution"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
HIDDEN_OUTPUT_TAGS = {"remove-output", "remove-cell"}
NOT_RECORDED = "not recorded"


# --- the stamp ---------------------------------------------------------------------------------

def machine():
    """The executing machine, as the stamp records it."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpu": gpu, "system": platform.system()}


def versions():
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__}


def profile_name():
    from ..training.profiles import get_profile

    return get_profile().name


def stamp(nb, profile=None, machine_info=None, version_info=None):
    """Record the run in ``nb.metadata.vgg_execution`` (fields left None are not recorded)."""
    nb.metadata[KEY] = {"profile": profile, "machine": machine_info, "versions": version_info,
                        "stamped": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return nb


# --- progress bars and widget state ------------------------------------------------------------

def _state(nb):
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def progress_text(model_id, state, width=10):
    """The final text of a tqdm notebook bar (an HBox of HTML, FloatProgress, HTML), or None."""
    box = state.get(model_id)
    if not box or box.get("model_name") != "HBoxModel":
        return None
    children = [state.get(ref.replace("IPY_MODEL_", ""), {}) for ref in box["state"].get("children", [])]
    names = [child.get("model_name") for child in children]
    if names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (child.get("state", {}) for child in children)
    value, total = bar.get("value") or 0, bar.get("max") or 0
    filled = int(round(width * value / total)) if total else 0
    text = f"{html.unescape(left.get('value', ''))}|{'█' * filled}{' ' * (width - filled)}|{html.unescape(right.get('value', ''))}"
    return text.replace("\u2007", " ")


def clean(nb):
    """Progress bars to text; widget state dropped where no shown output needs it. Returns nb."""
    state = _state(nb)
    needed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        hidden = bool(HIDDEN_OUTPUT_TAGS & set(cell.metadata.get("tags", [])))
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            text = progress_text(view.get("model_id"), state)
            if text is not None:
                output.data = {"text/plain": text}
            elif not hidden:
                needed = True
    if not needed:
        nb.metadata.pop("widgets", None)
    return nb


# --- the report --------------------------------------------------------------------------------

def last_executed(nb):
    """The last code cell's reply time, 'YYYY-MM-DD HH:MM UTC', or None."""
    ends = [cell.metadata.get("execution", {}).get("shell.execute_reply") for cell in nb.cells
            if cell.cell_type == "code"]
    ends = [e for e in ends if e]
    if not ends:
        return None
    return max(runtimes._time(e) for e in ends).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def describe_machine(info):
    if not info:
        return NOT_RECORDED
    text = f"{info.get('cpu') or 'CPU not recorded'}, {info.get('cores') or '?'} cores"
    return text + (f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU")


def describe_versions(info):
    if not info:
        return NOT_RECORDED
    return ", ".join(info.get(name) or NOT_RECORDED for name in ("python", "torch", "torchvision"))


def _duration(seconds):
    if seconds is None:
        return "not measured"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def markdown(notebooks, root):
    lines = ["| Chapter | Last executed | Profile | Took | Machine | Python, torch, torchvision |",
             "| --- | --- | --- | --- | --- | --- |"]
    unstamped = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        doc = "/" + Path(path).resolve().relative_to(Path(root).resolve()).with_suffix("").as_posix()
        info = nb.metadata.get(KEY) or {}
        if not info.get("machine"):
            unstamped.append(f"{{doc}}`{doc}`")
        lines.append(f"| {{doc}}`{doc}` | {last_executed(nb) or 'never'} | {info.get('profile') or NOT_RECORDED} "
                     f"| {_duration(runtimes.measured_seconds(nb))} | {describe_machine(info.get('machine'))} "
                     f"| {describe_versions(info.get('versions'))} |")
    text = "\n".join(lines) + "\n"
    if unstamped:
        text += ("\nNot stamped by `make notebooks` (machine and versions not recorded): "
                 + ", ".join(unstamped) + ".\n")
    return text + records_markdown(root, notebooks)


def _readers(notebooks):
    """{records folder name: the chapter numbers whose stored outputs name ``results/<it>/``}
    (``runtimes.records_read``)."""
    found = {}
    for path in notebooks:
        for name in runtimes.records_read(nbformat.read(path, as_version=4)):
            found.setdefault(name, []).append(str(int(Path(path).name.split("_")[0])))
    return found


def records_markdown(root, notebooks=None):
    """The run records the repository ships (``results/<study>/*.json``, read by the chapters
    instead of training): per study, the chapters that read it (of ``notebooks``, default those
    in _toc.yml), its runs, where and in what precision they were made, and what they cost,
    summed over the runs, then the sum over all ("" when none are shipped)."""
    # only here: the page's other tables need no torch
    from ..experiments.provenance import Provenance
    from ..experiments.runs import read_record

    readers = _readers(toc_notebooks(root) if notebooks is None else notebooks)
    chapters = {name: ", ".join(found) for name, found in readers.items()}
    lines, runs, seconds, cpu_seconds = [], 0, 0.0, 0.0
    for folder in sorted((p for p in (Path(root) / "results").glob("*") if p.is_dir()),
                         key=lambda p: (int(readers.get(p.name, [99])[0]), p.name)):
        records = [read_record(path) for path in sorted(folder.glob("*.json"))]
        if not records:
            continue
        shipped = Provenance.shipped(records, folder.name)
        runs, seconds, cpu_seconds = runs + len(records), seconds + shipped.seconds, cpu_seconds + shipped.cpu_seconds
        machines = sorted({f"{r.machine.get('cpu')}, {r.machine.get('cores')} cores" for r in records})
        lines.append(f"| {chapters.get(folder.name, '-')} | `results/{folder.name}/` | {len(records)} "
                     f"| {'; '.join(machines)} | {', '.join(shipped.precisions)}, "
                     f"{', '.join(map(str, shipped.threads))} thread(s) | {_duration(shipped.seconds)} "
                     f"| {_duration(shipped.cpu_seconds)} |")
    if not lines:
        return ""
    lines.append(f"| all | | {runs} | | | {_duration(seconds)} | {_duration(cpu_seconds)} |")
    return ("\nThe run records the chapters read instead of training (`make results` makes them), "
            "with their cost summed over the runs:\n\n"
            "| Chapter | Records | Runs | Made on | Precision, threads per run | Wall time | CPU time |\n"
            "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(lines) + "\n"
            f"\nRegenerating all of them takes {_duration(cpu_seconds)} of CPU time, "
            f"{cpu_seconds / 3600 / 2:.1f} h on two cores kept busy (the book's budget: at most 6 h).\n")


def main(argv=None):
    parser = command_line("vgg_lib.teaching.execution", __doc__, {
        "stamp": "record profile, machine and versions, then --clean",
        "clean": "progress bars to text, unused widget state dropped",
        "markdown": "print the table for book/execution.md"},
        notebooks="notebooks (default for --markdown: the chapters in _toc.yml)")
    args = parser.parse_args(argv)
    if args.markdown:
        root = find_root(args.root)
        print(markdown([Path(p) for p in args.notebooks] or toc_notebooks(root), root), end="")
        return 0
    if not args.notebooks:
        parser.error("name the notebooks to stamp or clean")
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if args.stamp:
            stamp(nb, profile_name(), machine(), versions())
        nbformat.write(clean(nb), path)
        print(f"{'stamped' if args.stamp else 'cleaned'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
