"""Run one submission's notebook inside its sandbox: ``.../grade_one.py BOX FD``.

Started by vgg_lib/teaching/jobs.py, never by hand, as a script: importing ``vgg_lib``, and with
it torch, would only slow every submission down (the kernel imports it). ``BOX`` is the job's
scratch folder, holding ``job.json`` (time limit, kernel) and ``submission.ipynb``; the kernel
runs in ``BOX/work`` and appends one line per ``check`` call to ``BOX/results.jsonl``
(vgg_lib/exercises/checking.py), recording answers without judging them.

The runner writes no file of its own: it tells the grader what happened over the pipe ``FD``,
one JSON object a line: ``{"cell": i}`` when cell ``i`` starts, then ``{"outcome": text}`` and
``{"executed": notebook}``. A link or a folder the submission plants in ``BOX`` therefore cannot
redirect or stop it. The kernel runs as the same user and could write to the pipe too, so the
grader treats every line as untrusted, and decides correctness itself.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Orphans below us (``setsid`` ones too) are reparented to us, not to init."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def kill_descendants():
    """SIGKILL every process below this one, until none is left."""
    for _ in range(50):
        children = []
        for task in os.listdir(f"/proc/{os.getpid()}/task"):
            try:
                with open(f"/proc/{os.getpid()}/task/{task}/children") as handle:
                    children += [int(pid) for pid in handle.read().split()]
            except OSError:
                continue
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _first_error(nb):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                value = output.get("evalue", "").splitlines()[0] if output.get("evalue") else ""
                return f"error in cell {index}: {output.get('ename', 'Error')}: {value[:120]}".rstrip(": ")
    return None


def main(box, fd):
    become_subreaper()  # orphans (setsid ones too) come back to us and die in kill_descendants
    channel = os.fdopen(int(fd), "w", encoding="utf-8")

    def send(**message):
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    box = Path(box)
    home = box / "home"
    for sub in ("", "matplotlib", "runtime", "ipython", "cache", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    job = json.loads((box / "job.json").read_text(encoding="utf-8"))
    timeout = job["timeout"]

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(box / "submission.ipynb", as_version=4)
    work = box / "work"
    work.mkdir(exist_ok=True)
    deadline = []

    def remaining(cell):
        if not deadline:
            deadline.append(time.monotonic() + timeout)
        return max(1, int(deadline[0] - time.monotonic() + 0.999))

    started = [None]

    def on_cell_start(cell, cell_index):
        started[0] = cell_index
        send(cell=cell_index)

    client = NotebookClient(nb, kernel_name=job.get("kernel", "python3"), timeout_func=remaining,
                            allow_errors=True, shutdown_kernel="immediate", record_timing=False,
                            on_cell_start=on_cell_start, resources={"metadata": {"path": str(work)}})
    env = {**os.environ, "VGG_CHECK_LOG": str(box / "results.jsonl"), "VGG_CHECK_GRADING": "1"}
    try:
        client.execute(env=env, stderr=subprocess.DEVNULL)  # the kernel's own chatter, not cell output
        outcome = _first_error(nb) or "ran to the end"
    except CellTimeoutError:
        outcome = f"stopped at the {timeout} s time limit in cell {started[0]}"
    except DeadKernelError:
        outcome = f"the kernel died in cell {started[0]} (out of memory, or the code exited the kernel)"
    except Exception as error:
        outcome = f"could not run: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}"
    send(outcome=outcome)
    try:
        send(executed=nbformat.writes(nb))
    except Exception as error:
        send(outcome=f"{outcome}; the executed notebook could not be kept ({type(error).__name__})")
    kill_descendants()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
