"""How long each chapter takes to run, read from the notebooks' stored execution metadata.

    python -m vgg_lib.teaching.runtimes --markdown

``make notebooks`` executes a chapter with nbclient, which stamps every code cell with when it
started and finished (``metadata.execution``). The span from the first cell's start to the last
cell's reply is the chapter's run time on the machine that stored it (without the kernel's start).
Times are shown in coarse bands so the page does not change with every re-run.
"""

import re
import sys
from datetime import datetime
from pathlib import Path

import nbformat

from .notebooks import chapter_command

BANDS = [(60, "under 1 min"), (120, "1–2 min"), (180, "2–3 min"), (300, "3–5 min"), (600, "5–10 min"),
         (1200, "10–20 min")]


def _time(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def measured_seconds(nb):
    """Seconds from the first code cell's start to the last one's reply; None if not recorded
    for every code cell (a notebook never executed, or executed by hand in pieces)."""
    starts, ends = [], []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        execution = cell.metadata.get("execution", {})
        start = execution.get("iopub.status.busy") or execution.get("iopub.execute_input")
        end = execution.get("shell.execute_reply")
        if not (start and end):
            return None
        starts.append(_time(start))
        ends.append(_time(end))
    if not starts:
        return None
    return (max(ends) - min(starts)).total_seconds()


def band(seconds):
    if seconds is None:
        return "not measured"
    for limit, label in BANDS:
        if seconds < limit:
            return label
    return f"over {BANDS[-1][0] // 60} min"


def trains(nb):
    """Whether a chapter trains a network (calls vgg_lib's fit, or run_study, train_grid or
    run_transfer_study, which call it), or would without the records it reads."""
    return any(cell.cell_type == "code" and any(call in cell.source for call in
                                                ("fit(", "run_study(", "train_grid(", "run_transfer_study("))
               for cell in nb.cells)


def records_read(nb):
    """The records folders (``results/<name>/``) that a chapter's stored outputs name: those it
    read instead of training (each study's ``experiments.provenance`` lines say so)."""
    text = "".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", ()))
    return sorted(set(re.findall(r"results/([A-Za-z0-9._-]+)/", text)))


def records_cost(nb, root):
    """``(runs, CPU seconds)`` summed over the shipped records of the folders the chapter read:
    what a reader without them (Colab, an installed vgg_lib) trains instead."""
    from ..experiments.runs import read_record   # only here: the other tables need no torch

    records = [read_record(path) for name in records_read(nb)
               for path in sorted((Path(root) / "results" / name).glob("*.json"))]
    return len(records), sum(r.cpu_seconds for r in records)


def gpu_estimate():
    """The training profile's own estimate of one full-profile training run on a Colab T4."""
    from ..training.profiles import format_seconds, make_profile

    return f"~{format_seconds(make_profile('full', 'cpu').expected_seconds_t4)} per training run (estimate)"


def markdown(notebooks, root):
    lines = ["| Chapter | Code cells | CPU, quick profile (measured) | Runs read from records (their CPU time) "
             "| Colab T4, full profile |",
             "| --- | --- | --- | --- | --- |"]
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        doc = "/" + Path(path).resolve().relative_to(Path(root).resolve()).with_suffix("").as_posix()
        code = sum(cell.cell_type == "code" for cell in nb.cells)
        gpu = gpu_estimate() if trains(nb) else "no training"
        runs, cpu = records_cost(nb, root)
        read = f"{runs} ({band(cpu)})" if runs else "none"
        lines.append(f"| {{doc}}`{doc}` | {code} | {band(measured_seconds(nb))} | {read} | {gpu} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    def listing(path):
        seconds = measured_seconds(nbformat.read(path, as_version=4))
        return [f"{path.name:<32} {'not measured' if seconds is None else f'{seconds:.0f} s'}"]

    return chapter_command("vgg_lib.teaching.runtimes", __doc__,
                           "print the table for book/instructors.md", markdown, listing, argv)


if __name__ == "__main__":
    sys.exit(main())
