"""Run one grading job in the strongest isolation this machine offers.

* **bubblewrap** (``bwrap``, Debian's ``bubblewrap``), when it is installed and may create
  namespaces: the job sees a read-only system and Python install, a read-only copy of ``vgg_lib``
  and one writable folder (its scratch folder, mounted at ``/grading``); it has its own process,
  network (none), IPC and hostname namespaces and its own ``/proc``, so it cannot see the grader,
  the submissions folder or the report. Every process it starts, ``setsid`` ones included, lives
  in its process namespace and dies when the namespace's first process does.
* **no sandbox** (bubblewrap missing or refused, or asked for with ``--sandbox none``): the job
  runs as the grader's user in a new session and process group that is killed as a whole; the
  runner inside is a child subreaper that kills everything left below it, and the grader kills
  any process still carrying the job's token in its environment. The files of the grader's user
  are not protected.

Both apply resource limits (address space, processes, file size, CPU time, no core files) and a
wall-clock limit enforced by the grader, which kills the whole job.
"""

import os
import resource
import secrets
import shutil
import signal
import site
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BOX = "/grading"  # the scratch folder, as the sandboxed job sees it
LIBRARY = "/opt/vgg-book"  # where the sandbox mounts the grader's own vgg_lib (read-only)
TOKEN_VARIABLE = "VGG_GRADE_RUN"
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "fonts", "ssl",
        "nsswitch.conf", "passwd", "group", "mime.types", "matplotlibrc")


@dataclass
class Limits:
    seconds: float  # wall clock for the whole job
    memory_mb: int = 6144  # address space of each process (torch maps a lot without using it)
    processes: int = 512  # more than the user already runs; not enforced for root (Linux exempts it)
    file_mb: int = 256  # largest file a process may write (results, executed notebook, output)


@dataclass
class Sandbox:
    kind: str  # "bwrap" or "none"
    description: str  # one sentence for the report's header


def _bwrap_problem():
    exe = shutil.which("bwrap")
    if not exe:
        return "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run([exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                                "--proc", "/proc", "--dev", "/dev", "true"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap could not run ({type(error).__name__})"
    if probe.returncode:
        reason = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        return "bwrap cannot create namespaces here" + (f" ({reason[-1][:120]})" if reason else "")
    return None


def choose(mode="auto"):
    """The sandbox to use: ``mode`` is "auto" (bubblewrap when it works), "bwrap" (or fail) or
    "none". The environment variable VGG_GRADE_SANDBOX gives the default mode."""
    mode = mode or os.environ.get("VGG_GRADE_SANDBOX", "auto")
    if mode not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox must be auto, bwrap or none, not {mode!r}")
    if mode == "none":
        return Sandbox("none", "No sandbox (turned off with --sandbox none): " + _FALLBACK)
    problem = _bwrap_problem()
    if problem is None:
        return Sandbox("bwrap", "Each notebook ran in a bubblewrap sandbox: its own copy in a scratch folder, "
                                "a read-only system, no network, its own process namespace and /proc "
                                "(nothing of the grader, the submissions or the report is visible), "
                                "killed as a whole at the time limit; with limits on memory, processes "
                                "and file size.")
    if mode == "bwrap":
        raise RuntimeError(f"--sandbox bwrap was asked for, but {problem}")
    return Sandbox("none", f"**No sandbox**: {problem}. " + _FALLBACK)


_FALLBACK = ("Each notebook ran on its own copy in a scratch folder, in a new session and process group "
             "killed as a whole, with limits on memory, processes, file size and time; but with your "
             "permissions: it could read and change your files. Install bubblewrap (apt-get install "
             "bubblewrap) to isolate the notebooks.")


def _inside(path, folder):
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def _read_only_folders():
    """The system and Python folders a job needs, with no duplicates and no nesting."""
    folders = [Path(p) for p in ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")]
    python = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
              Path(os.path.realpath(sys.executable)).parent.parent]
    python += [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    links = [f for f in folders if f.is_symlink()]  # /lib64 -> usr/lib64 on merged-/usr systems
    kept = []
    for folder in folders + python:
        if folder.exists() and not folder.is_symlink() and not any(_inside(folder, k) for k in kept):
            kept = [k for k in kept if not _inside(k, folder)] + [folder]
    return kept + links


def bwrap_command(box, command, hidden=()):
    """bwrap arguments that run ``command`` with ``box`` as the only writable folder (at BOX).
    ``hidden``: folders to cover with an empty tmpfs if they lie inside a read-only one."""
    import vgg_lib

    args = [shutil.which("bwrap"), "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--hostname", "grading"]
    folders = _read_only_folders()
    for folder in folders:
        if folder.is_symlink():
            args += ["--symlink", os.readlink(folder), str(folder)]
        else:
            args += ["--ro-bind", str(folder), str(folder)]
    for name in _ETC:
        if os.path.lexists(f"/etc/{name}"):
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind", str(Path(vgg_lib.__file__).resolve().parent), f"{LIBRARY}/vgg_lib",
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm",
             "--bind", str(box), BOX]
    for path in _data_paths():  # CIFAR-10 for the training chapters, read-only where it is
        args += ["--ro-bind", str(path), str(path)]
    visible = [f for f in folders if not f.is_symlink()] + _data_paths()
    for folder in hidden:
        if Path(folder).is_dir() and any(_inside(folder, f) for f in visible):
            args += ["--tmpfs", str(Path(folder).resolve())]
    args += ["--chdir", BOX, "--clearenv"]
    env = job_environment(BOX, LIBRARY)
    env.update({"VGG_DATA_DIR": str(p) for p in _data_paths()[-1:] if p.is_dir()})
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args + ["--"] + list(command)


def _data_paths():
    """The offline CIFAR-10 sample (VGG_CIFAR10_NPZ) and the data folder (vgg_lib.training.data.data_dir),
    where they exist: the sandbox shows them read-only, so training chapters find their data."""
    from ..training import data

    paths = [Path(os.environ[data.ENV_NPZ]).resolve()] if os.environ.get(data.ENV_NPZ) else []
    return [p for p in paths if p.is_file()] + [p for p in [data.data_dir().resolve()] if p.is_dir()]


def job_environment(box, library):
    """The environment of a job: nothing of the grader's but the book's own VGG_* settings."""
    python_bin = str(Path(os.path.realpath(sys.executable)).parent)
    env = {"PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": f"{box}/home", "LANG": "C.UTF-8",
           "PYTHONPATH": library, "PYTHONUSERBASE": site.getuserbase(), "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": f"{box}/home/matplotlib", "JUPYTER_RUNTIME_DIR": f"{box}/home/runtime",
           "IPYTHONDIR": f"{box}/home/ipython", "XDG_CACHE_HOME": f"{box}/home/cache",
           "TMPDIR": f"{box}/home/tmp", "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    for key, value in os.environ.items():
        if key.startswith("VGG_") and key not in ("VGG_CHECK_LOG", "VGG_GRADE_SANDBOX", TOKEN_VARIABLE):
            env[key] = value
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TZ"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _processes_of_this_user():
    """RLIMIT_NPROC counts every process of the user, so the job's allowance comes on top."""
    count = 0
    for pid in os.listdir("/proc"):
        try:
            count += pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == os.getuid()
        except OSError:
            continue
    return count


def _limit(limits):
    processes = _processes_of_this_user() + limits.processes

    def apply():
        for name, value in ((resource.RLIMIT_AS, limits.memory_mb << 20),
                            (resource.RLIMIT_FSIZE, limits.file_mb << 20),
                            (resource.RLIMIT_NPROC, processes),
                            (resource.RLIMIT_CPU, int(limits.seconds) + 60),
                            (resource.RLIMIT_CORE, 0)):
            try:
                _, hard = resource.getrlimit(name)
                value = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(name, (value, value))
            except (ValueError, OSError):
                pass
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return apply


def _kill_carriers(token):
    """SIGKILL every process whose environment holds ``token`` (the no-sandbox case)."""
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    for _ in range(5):
        found = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        os.kill(int(pid), signal.SIGKILL)
                        found = True
            except OSError:
                continue
        if not found:
            return
        time.sleep(0.1)


@dataclass
class Finished:
    returncode: int
    timed_out: bool
    seconds: float


def run(sandbox, box, command, limits, log_path, hidden=()):
    """Run ``command`` (a list; its paths as the job sees them: BOX for ``box``) and wait at most
    ``limits.seconds``; then kill it and everything it started. Never raises for the job."""
    token = secrets.token_hex(16)
    if sandbox.kind == "bwrap":
        argv, env, cwd = bwrap_command(box, command, hidden), {"PATH": os.environ.get("PATH", "")}, None
    else:
        env = job_environment(str(box), str(Path(__import__("vgg_lib").__file__).resolve().parent.parent))
        env[TOKEN_VARIABLE] = token
        argv = [str(box) if part == BOX else part.replace(BOX + "/", f"{box}/") for part in command]
        cwd = str(box)
    start = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=cwd,
                                   start_new_session=True, preexec_fn=_limit(limits), close_fds=True)
        timed_out = False
        try:
            process.wait(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            if sandbox.kind == "none":
                _kill_carriers(token)
    return Finished(process.returncode, timed_out, time.monotonic() - start)
