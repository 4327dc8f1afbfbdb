"""Running grading jobs: one run's scratch folder, then each job started in its sandbox (and
watched, heard and killed by vgg_lib/teaching/job_watch.py).

Scratch: ``/tmp/vgg-grade-<pid>-XXXX/`` (the grader's, mode 0711) holds ``library/`` (the job's
vgg_lib, read-only) and one folder per job (0711) with ``runner.log`` (the grader's, 0600) and
``box/``, the only folder the job may write (in the user sandbox owned by the job's uid, 0700).
The grader reads nothing from the box but ``results.jsonl`` (without following links, as
untrusted input) and hears the runner only over a pipe; it writes into the box only before the
job starts, and removes it only once every process of the job is dead. A reaper process
(vgg_lib/teaching/reaper.py) cleans up after a job whose grader was killed.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import vgg_lib

from . import job_users
from . import sandbox as sandboxes
from .confine import REFUSED
from .job_library import make_library
from .job_watch import kill, read_regular, watch

MAX_RESULTS_BYTES = 1 << 20
HERE = Path(__file__).resolve().parent
# Runs a file of this folder as a script without its folder on sys.path (its neighbours would
# shadow modules such as ``exercises``) and without importing vgg_lib, and with it torch.
_BOOT = ("import runpy, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
         "sys.argv[:] = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
# Run as a job before the first one: what each protected path shows it (a folder's entries, or
# True for a regular file it may open; a covered folder is empty but for what is shown again
# inside it, a covered file is /dev/null).
_PROBE = ("import json, os, stat, sys\n"
          "shown = {}\n"
          "for path in json.loads(sys.argv[2]):\n"
          "    try:\n"
          "        shown[path] = os.listdir(path) if os.path.isdir(path) else \\\n"
          "            stat.S_ISREG(os.fstat(os.open(path, os.O_RDONLY)).st_mode)\n"
          "    except OSError:\n"
          "        pass\n"
          "probe = {'shown': shown, 'library': os.access(sys.argv[3], os.R_OK)}\n"
          "os.write(int(sys.argv[1]), (json.dumps({'probe': probe}) + '\\n').encode())\n")


def python():
    return os.path.realpath(sys.executable)


def remove(folder):
    """Remove a scratch folder even where the job took the permissions away from its own files."""
    for top, dirs, _ in os.walk(folder):
        for name in dirs:
            path = os.path.join(top, name)
            try:
                if not os.path.islink(path):  # a link is removed, never followed
                    os.chmod(path, 0o700)
            except OSError:
                pass
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale_scratch():
    """Scratch folders of graders that no longer run (killed with their reaper)."""
    for folder in Path(tempfile.gettempdir()).glob("vgg-grade-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            remove(folder)


def _private_ancestor(path):
    """The first folder above ``path`` that other users may not enter, if any."""
    parts = Path(path).parts
    for depth in range(2, len(parts) + 1):
        folder = str(Path(*parts[:depth]))
        try:
            mode = os.stat(folder).st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return folder
    return None


class Grading:
    """One grading run: its scratch folder, the job's copy of vgg_lib, the reaper; ``run`` runs a job.

    protected: paths no job may read (the submissions, the report, the chapters graded against),
    to which the book's repository (where vgg_lib lives, beside the solutions) and, summatively,
    vgg_lib itself are added; the bwrap sandbox covers those inside what it shows, the user
    sandbox covers them all where it can, and refuses (Refused) unless a probe run as a job finds
    every one unreadable."""

    def __init__(self, sandbox, limits, protected=(), summative=False, namespaces=True):
        self.sandbox, self.limits, self.summative = sandbox, limits, summative
        self.namespaces = namespaces  # False: the user sandbox as on a machine that allows none (tests)
        package = Path(vgg_lib.__file__).resolve().parent
        protected = list(protected) + [package.parent] if (package.parent / "_config.yml").is_file() else list(protected)
        protected += [package] if summative else []  # in the book's repository: the solutions
        self.protected = sorted({str(Path(p).resolve()) for p in protected if os.path.lexists(p)} - {"/"})
        self.root = self.library = self.reaper = None
        self.jobs, self.require_mounts, self.lock, self.ids = 0, False, threading.Lock(), set()
        self.stopping = threading.Event()

    def stop(self):
        """Kill the jobs running now (from any thread): the grader is being stopped."""
        self.stopping.set()

    def __enter__(self):
        if self.summative and self.sandbox.kind == "none":
            raise sandboxes.Refused("--summative needs a sandbox: without one the notebook could read the "
                                    "expected values from the grader's own vgg_lib.")
        remove_stale_scratch()
        self.root = Path(tempfile.mkdtemp(prefix=f"vgg-grade-{os.getpid()}-"))
        try:
            os.chmod(self.root, 0o711)
            self.library = make_library(self.root / "library", self.summative)
            self.reaper = subprocess.Popen([python(), "-c", _BOOT, str(HERE / "reaper.py")], stdin=subprocess.PIPE,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True)
            if self.sandbox.kind == "user":
                self._check_what_a_job_can_read()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.reaper:
            self.reaper.stdin.close()
            self.reaper.wait()
        if self.root:
            remove(self.root)

    def _tell_reaper(self, message):
        with self.lock:
            try:
                self.reaper.stdin.write((json.dumps(message) + "\n").encode())
                self.reaper.stdin.flush()
            except (OSError, ValueError):
                pass

    def _check_what_a_job_can_read(self):
        library = self.library / "vgg_lib" / "__init__.py"
        finished = self._start(None, [python(), "-c", _PROBE, None, json.dumps(self.protected), str(library)])
        probe, had = finished.probe or {}, finished.confined or {}
        if not probe:
            raise sandboxes.Refused(sandboxes.how_to_get_one(
                f"{self.sandbox.reason}, and a notebook run as a user of its own could not start Python "
                f"({python()}): {finished.log_tail or 'a folder above it is private'}"))
        readable = [path for path, shown in probe.get("shown", {}).items() if shown is True or
                    isinstance(shown, list) and set(shown) - self._shown_inside(path)]
        if readable or not probe.get("library"):
            what = ", ".join(readable[:3]) + (" ..." if len(readable) > 3 else "") or "its copy of vgg_lib"
            raise sandboxes.Refused(sandboxes.how_to_get_one(
                f"{self.sandbox.reason}, and a notebook run as a user of its own could still read {what} "
                f"({'even in a mount namespace' if had.get('mounts') else 'no mount namespace here to hide it'}); "
                f"or make those unreadable to other users (chmod o-rwx)"))
        self.require_mounts = bool(had.get("mounts"))

    def _needed(self):
        """What a job must see: the system, the Python it runs (not a virtual environment's
        folder: jobs run the interpreter itself), the data; and its library."""
        venv = [sys.prefix] if sys.prefix != sys.base_prefix else []
        needed = [str(f) for f in sandboxes.read_only_folders()
                  if not f.is_symlink() and not any(sandboxes._inside(f, v) for v in venv)]
        return needed + [str(p) for p in sandboxes.data_paths()] + [str(self.library)]

    def _shown_inside(self, folder):
        """Names directly inside ``folder`` that a job is shown on purpose (leading to a needed path)."""
        names = set()
        for path in self._needed():
            relative = os.path.relpath(path, folder)
            if not relative.startswith(".."):
                names.add(relative.split(os.sep)[0])
        return names

    def run(self, notebook_text, timeout, kernel):
        """Run one notebook (its text) to at most ``timeout`` seconds of cells; never raises for the job."""
        runner = [python(), "-c", _BOOT, "library/vgg_lib/teaching/grade_one.py", "BOX", None]
        return self._start(notebook_text, runner, {"timeout": timeout, "kernel": kernel})

    def _start(self, notebook_text, command, job=None):
        with self.lock:  # jobs may be started from several threads (grade --jobs)
            self.jobs += 1
            number = self.jobs
            uid = self._free_id() if self.sandbox.kind == "user" else None
        folder = self.root / f"job-{number}"
        folder.mkdir()
        os.chmod(folder, 0o711)  # not mkdir's mode: the grader's umask would take from it
        box = folder / "box"
        box.mkdir(mode=0o700)
        if notebook_text is not None:
            (box / "submission.ipynb").write_text(notebook_text, encoding="utf-8")
            (box / "job.json").write_text(json.dumps(job), encoding="utf-8")
        if uid is not None:
            for path in [box, *box.iterdir()]:
                os.chown(path, uid, uid)
        read_end, write_end = os.pipe()
        try:
            process = self._spawn(box, folder / "runner.log", command, uid, write_end)
        finally:
            os.close(write_end)
        self._tell_reaper({"job": number, "uid": uid, "pgid": process.pid, "scratch": str(self.root)})
        try:
            finished = watch(process, read_end, uid, self.limits, self.stopping)
        finally:
            os.close(read_end)
            kill(process, uid)
            self._tell_reaper({"job": number, "done": True})
        self._collect(finished, box, folder / "runner.log")
        remove(folder)
        with self.lock:
            self.ids.discard(uid)
        return finished

    def _free_id(self):
        while True:
            uid = job_users.free_id()
            if uid not in self.ids:
                self.ids.add(uid)
                return uid

    def _spawn(self, box, log_path, command, uid, fd):
        """Start the job's first process: confine.py, which limits it (and, in the user sandbox,
        confines it) and runs bwrap or the runner; no ``preexec_fn``, so threads may call this."""
        kind = self.sandbox.kind
        seen_box = sandboxes.BOX if kind == "bwrap" else str(box)
        seen_library = sandboxes.LIBRARY if kind == "bwrap" else str(self.library)
        argv = [seen_box if part == "BOX" else str(fd) if part is None else
                part.replace("library/", f"{seen_library}/", 1) if part.startswith("library/") else part
                for part in command]
        env = sandboxes.job_environment(seen_box, seen_library)
        token = None
        if kind == "bwrap":
            argv, env = sandboxes.bwrap_command(box, argv, self.library, self.protected), {"PATH": os.environ.get("PATH", "")}
        elif kind == "none":
            token = env[sandboxes.TOKEN_VARIABLE] = os.urandom(16).hex()
        spec = self._spec(box, uid, fd, argv) if uid is not None else \
            {"rlimits": sandboxes.rlimits(self.limits, sandboxes.processes_of_this_user() + self.limits.processes),
             "argv": argv}
        with open(log_path, "wb") as log:
            process = subprocess.Popen([python(), "-c", _BOOT, str(HERE / "confine.py"), json.dumps(spec)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=str(box),
                                       start_new_session=True, pass_fds=(fd,))
        process.token = token
        return process

    def _spec(self, box, uid, fd, argv):
        needed = self._needed()
        private = ["/tmp", "/var/tmp", "/dev/shm"]
        hide = list(self.protected) + [a for a in map(_private_ancestor, needed + [str(self.root)]) if a]
        expose = [[p, False] for p in needed] + [[str(box), True]]
        return {"uid": uid, "gid": uid, "fd": fd, "box": str(box), "hide": sorted(set(hide)), "private": private,
                "expose": expose, "rlimits": sandboxes.rlimits(self.limits), "require_mounts": self.require_mounts,
                "namespaces": self.namespaces,
                "parent": os.getpid(), "argv": argv}

    @staticmethod
    def _collect(finished, box, log_path):
        try:
            finished.results = read_regular(box / "results.jsonl", MAX_RESULTS_BYTES)
        except FileNotFoundError:
            pass
        except OSError:
            finished.results_problem = "results file not a regular file"
        try:
            lines = read_regular(log_path, 1 << 20)[-2000:].decode("utf-8", "replace").split("\n")
            finished.log_tail = next((line for line in reversed(lines) if line.strip()), "")
        except OSError:
            pass
        if finished.returncode == REFUSED and finished.refused is None and finished.confined is not None:
            finished.refused = "the job could not be confined"


def sandbox_problem(mode):
    """Why the sandbox ``mode`` cannot be had on this machine, or None when it can (for the user
    sandbox this runs the probe a grading run would)."""
    try:
        chosen = sandboxes.choose(mode)
        if chosen.kind == "user":
            with Grading(chosen, sandboxes.Limits(seconds=60)):
                pass
    except sandboxes.Refused as error:
        return str(error).split(". Install bubblewrap")[0]
    return None


def main():
    """``python -m vgg_lib.teaching.jobs``: which sandboxes this machine offers, and why not."""
    for mode in ("bwrap", "user", "none"):
        problem = sandbox_problem(mode)
        print(f"{mode:6} {'available' if problem is None else problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
