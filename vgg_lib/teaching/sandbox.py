"""Which isolation a grading job gets, what it sees, and bubblewrap's command line.

Three sandboxes, strongest first (book/instructors.md says what each one protects):

* **bwrap** (bubblewrap, Debian's ``bubblewrap``), when it is installed and may create
  namespaces: the job sees a read-only system and Python install, a read-only copy of vgg_lib
  (vgg_lib/teaching/job_library.py) and one writable folder, its scratch folder mounted at
  ``/grading``; it has its own process, network (none), IPC and hostname namespaces and its own
  ``/proc``, and everything it starts dies with it.
* **user**, when the grader runs as root without a working bubblewrap (many containers): each
  job runs as a user of its own (vgg_lib/teaching/job_users.py), confined with whatever
  namespaces the machine allows (vgg_lib/teaching/confine.py); before the first job a probe, run
  exactly like a job, must find the submissions, the report and the book's solutions unreadable,
  or grading is refused (vgg_lib/teaching/jobs.py).
* **none**, only when asked for (``--sandbox none``): the job runs with the grader's permissions.

``auto`` (the default) takes bwrap, else user, else refuses with one line saying how to get a
sandbox. All three limit resident memory (watched by the grader), processes, file size and time.
"""

import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BOX = "/grading"  # the scratch folder, as a bubblewrap job sees it
LIBRARY = "/opt/vgg-book"  # where bubblewrap mounts the job's copy of vgg_lib (read-only)
TOKEN_VARIABLE = "VGG_GRADE_RUN"
MODES = ("auto", "bwrap", "user", "none")
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "fonts", "ssl",
        "nsswitch.conf", "passwd", "group", "mime.types", "matplotlibrc")
_GRADER_VARIABLES = ("VGG_CHECK_LOG", "VGG_CHECK_GRADING", "VGG_GRADE_SANDBOX", TOKEN_VARIABLE)


class Refused(RuntimeError):
    """No sandbox that protects the submissions and the grader can be had here."""


@dataclass
class Limits:
    seconds: float  # wall clock for the whole job
    memory_mb: int = 6144  # resident memory of all the job's processes together
    processes: int = 512  # more than a notebook needs; not enforced for root (Linux exempts it)
    file_mb: int = 256  # largest file a process may write (results, executed notebook, output)


@dataclass
class Sandbox:
    kind: str  # "bwrap", "user" or "none"
    description: str  # one sentence for the report's header
    reason: str = ""  # why not bubblewrap


_BWRAP = ("Each notebook ran in a bubblewrap sandbox: its own copy in a scratch folder, a read-only system, "
          "no network, its own process namespace and /proc (nothing of the grader, the submissions, the "
          "report or the solutions is visible), killed as a whole at the time limit; with limits on "
          "resident memory, processes and file size.")
_USER = ("Each notebook ran as a user of its own ({why}), in a scratch folder only it could write, with the "
         "submissions, the report and the book's solutions out of its reach, its processes found and killed "
         "by its user id at the end, and limits on resident memory, processes and file size.")
_NONE = ("**No sandbox** (turned off with --sandbox none): each notebook ran with your permissions, so it "
         "could read and change your files, reach the network and leave processes behind.")


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


def _user_problem():
    if not Path("/proc/self/status").is_file():
        return "this system has no Linux /proc"
    if os.geteuid() != 0:
        return "the grader does not run as root (needed to run each notebook as a user of its own)"
    return None


def how_to_get_one(reason):
    """The one line a refusal prints."""
    return (f"No sandbox for the submissions here: {reason}. Install bubblewrap (Debian/Ubuntu: apt install "
            f"bubblewrap), or grade as root in a container; or pass --sandbox none to run them with your own "
            f"permissions (book/instructors.md lists the risks).")


def choose(mode=None):
    """The sandbox for ``mode`` ("auto", "bwrap", "user" or "none"; default: the environment
    variable VGG_GRADE_SANDBOX, else "auto"). Raises Refused when it cannot be had."""
    mode = mode or os.environ.get("VGG_GRADE_SANDBOX", "auto")
    if mode not in MODES:
        raise ValueError(f"sandbox must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none":
        return Sandbox("none", _NONE)
    problem = _bwrap_problem()
    if problem is None and mode in ("auto", "bwrap"):
        return Sandbox("bwrap", _BWRAP)
    if mode == "bwrap":
        raise Refused(how_to_get_one(f"--sandbox bwrap was asked for, but {problem}"))
    user_problem = _user_problem()
    if user_problem is None:
        reason = problem or "--sandbox user was asked for"
        return Sandbox("user", _USER.format(why=reason), reason)
    if mode == "user":
        raise Refused(how_to_get_one(f"--sandbox user was asked for, but {user_problem}"))
    raise Refused(how_to_get_one(f"{problem}, and {user_problem}"))


def _inside(path, folder):
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def read_only_folders():
    """The system and Python folders a job needs, with no duplicates and no nesting; links last
    (/lib64 -> usr/lib64 on merged-/usr systems)."""
    folders = [Path(p) for p in ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")]
    python = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
              Path(os.path.realpath(sys.executable)).parent.parent]
    python += [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    links = [f for f in folders if f.is_symlink()]
    kept = []
    for folder in folders + python:
        if folder.exists() and not folder.is_symlink() and not any(_inside(folder, k) for k in kept):
            kept = [k for k in kept if not _inside(k, folder)] + [folder]
    return kept + links


def data_paths():
    """The offline CIFAR-10 file (VGG_CIFAR10_NPZ) and the data folder, where they exist: jobs
    see them read-only, so training chapters find their data."""
    from ..training import data

    paths = [Path(os.environ[data.ENV_NPZ]).resolve()] if os.environ.get(data.ENV_NPZ) else []
    return [p for p in paths if p.is_file()] + [p for p in [data.data_dir().resolve()] if p.is_dir()]


def bwrap_command(box, command, library, hidden=()):
    """bwrap arguments that run ``command`` with ``box`` as the only writable folder (at BOX) and
    ``library`` (a folder holding the job's vgg_lib) at LIBRARY. ``hidden``: folders to cover
    with an empty tmpfs if they lie inside a folder the job sees."""
    args = [shutil.which("bwrap"), "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--hostname", "grading"]
    folders = read_only_folders()
    for folder in folders:
        if folder.is_symlink():
            args += ["--symlink", os.readlink(folder), str(folder)]
        else:
            args += ["--ro-bind", str(folder), str(folder)]
    for name in _ETC:
        if os.path.lexists(f"/etc/{name}"):
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind", str(library), LIBRARY,
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm",
             "--bind", str(box), BOX]
    for path in data_paths():  # CIFAR-10 for the training chapters, read-only where it is
        args += ["--ro-bind", str(path), str(path)]
    visible = [f for f in folders if not f.is_symlink()] + data_paths()
    for folder in hidden:
        if Path(folder).is_dir() and any(_inside(folder, f) for f in visible):
            args += ["--tmpfs", str(Path(folder).resolve())]
    args += ["--chdir", BOX, "--clearenv"]
    env = job_environment(BOX, LIBRARY)
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args + ["--"] + list(command)


def job_environment(box, library):
    """The environment of a job: nothing of the grader's but the book's own VGG_* settings."""
    python_bin = str(Path(os.path.realpath(sys.executable)).parent)
    env = {"PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": f"{box}/home", "LANG": "C.UTF-8",
           "USER": "student", "LOGNAME": "student",
           "PYTHONPATH": str(library), "PYTHONUSERBASE": site.getuserbase(), "PYTHONDONTWRITEBYTECODE": "1",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{box}/home/matplotlib", "JUPYTER_RUNTIME_DIR": f"{box}/home/runtime",
           "IPYTHONDIR": f"{box}/home/ipython", "XDG_CACHE_HOME": f"{box}/home/cache",
           "TMPDIR": f"{box}/home/tmp", "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    for key, value in os.environ.items():
        if key.startswith("VGG_") and key not in _GRADER_VARIABLES:
            env[key] = value
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TZ"):
        if key in os.environ:
            env[key] = os.environ[key]
    data = [p for p in data_paths() if p.is_dir()]
    if data:
        env["VGG_DATA_DIR"] = str(data[-1])
    return env


def processes_of_this_user():
    """RLIMIT_NPROC counts every process of the user, so the job's allowance comes on top."""
    count = 0
    for pid in os.listdir("/proc"):
        try:
            count += pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == os.getuid()
        except OSError:
            continue
    return count


def rlimits(limits, processes=None):
    """The resource limits of a job's processes, by ``resource`` name. Memory is watched by the
    grader instead: an address-space limit measures what torch maps, not what it uses."""
    return {"RLIMIT_FSIZE": limits.file_mb << 20,
            "RLIMIT_NPROC": limits.processes if processes is None else processes,
            "RLIMIT_CPU": int(limits.seconds) + 60, "RLIMIT_CORE": 0}
