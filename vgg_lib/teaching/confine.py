"""As root, confine one grading job's first process, become the job's own user, run the job.

Started by vgg_lib/teaching/jobs.py for the "user" sandbox, never by hand, as a script (it
imports nothing of vgg_lib)::

    python .../confine.py SPEC            # SPEC: JSON, see below; the command is SPEC["argv"]

Without ``uid`` in SPEC (the bwrap and none sandboxes) it only sets the resource limits and runs
the command (bubblewrap itself, or the runner): the grader starts every job the same way, with no
``preexec_fn``, so that several jobs may be started from threads.

Everything that can be had is had, each part separately, before any of the submission's code
runs:

* a network namespace holding only a loopback interface: no network (the kernel still talks to
  its runner over 127.0.0.1 inside it);
* a mount namespace in which the folders in ``hide`` (the submissions, the report, the book and
  its solutions) are covered by empty read-only folders, ``private`` folders (/tmp, /var/tmp,
  /dev/shm) are fresh small ones of the job's own, and the paths in ``expose`` (Python, the
  job's copy of vgg_lib, its scratch folder) are shown again where a covered or private folder
  held them; with it, a /proc that shows the job its own processes only (Linux 5.8 or later);
* its own IPC and host name;

then supplementary groups are dropped, the job's own gid and uid taken, set-uid programs can no
longer raise privileges (``PR_SET_NO_NEW_PRIVS``), and the resource limits in ``rlimits`` apply.
The first line written to the pipe ``fd`` says what was had: ``{"confined": {"network": bool,
"mounts": bool, "processes": bool}}``. Where ``require_mounts`` is set and the mount namespace
cannot be had, nothing runs (exit status 111 and ``"refused"`` in that line).
"""

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x00020000, 0x04000000, 0x08000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
REFUSED = 111

_libc = ctypes.CDLL(None, use_errno=True)


def _call(name, *args):
    if getattr(_libc, name)(*args) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}: {os.strerror(error)}")


def _mount(source, target, fstype, flags, data=None):
    encode = (lambda text: text.encode() if text is not None else None)
    _call("mount", encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))


def _under(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as handle:
        flags = struct.unpack("16sh22x", fcntl.ioctl(handle, SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0)))[1]
        fcntl.ioctl(handle, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def isolate_network():
    """A network namespace with its loopback up, or False where none can be made."""
    try:
        _call("unshare", CLONE_NEWNET)
    except OSError:
        return False
    _loopback_up()
    return True


def _cover(path, private):
    if os.path.isdir(path):
        options = "size=64m,mode=1777" if private else "size=1m,mode=0755"
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
    else:
        _mount("/dev/null", path, None, MS_BIND)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _show(path, handle, writable):
    """Bind the original ``path`` (open as ``handle``) back where a covering folder hid it."""
    if os.path.isdir(f"/proc/self/fd/{handle}"):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()
    _mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
    if not writable:
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def arrange_mounts(hide, private, expose):
    """The mount namespace described in the module's docstring; False where none can be made."""
    try:
        _call("unshare", CLONE_NEWNS)
    except OSError:
        return False
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Opened in the new namespace (a bind from a mount of another namespace fails), before covering.
    handles = {path: os.open(path, os.O_PATH) for path, _ in expose if os.path.lexists(path)}
    covered = []
    for path in sorted(set(hide) | set(private)):
        if os.path.lexists(path) and not any(_under(path, c) for c in covered):
            _cover(path, path in private)
            covered.append(path)
    shown = []
    for path, writable in sorted(expose, key=lambda item: item[0].count("/")):
        if path in handles and any(_under(path, c) for c in covered) and not any(_under(path, s) for s in shown):
            _show(path, handles[path], writable)
            shown.append(path)
    for path in hide:  # a protected folder inside one shown again is covered again
        if any(_under(path, s) and path != s for s in shown) and os.path.lexists(path):
            _cover(path, False)
    for path in covered:
        if path not in private and os.path.isdir(path):
            _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for handle in handles.values():
        os.close(handle)
    return True


def hide_other_processes():
    """A /proc of the job's own processes (hidepid): only where each mount of /proc has its own
    options (Linux 5.8), since before that the option would change the machine's /proc too."""
    release = tuple(int(part) for part in os.uname().release.split("-")[0].split(".")[:2])
    if release < (5, 8):
        return False
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    return True


def become(uid, gid, rlimits):
    for name, value in rlimits.items():  # as root: any value may be set
        resource.setrlimit(getattr(resource, name), (value, value))
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _call("prctl", PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _call("prctl", PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
          ctypes.c_ulong(0))  # after setuid, which clears it: the job dies with the grader
    os.umask(0o077)


def limit_only(spec):
    """The bwrap and none sandboxes: only the resource limits, then the command (which is bwrap
    itself, or the runner)."""
    for name, value in spec["rlimits"].items():
        limit = getattr(resource, name)
        _, hard = resource.getrlimit(limit)
        try:
            resource.setrlimit(limit, (value, value) if hard == resource.RLIM_INFINITY else (min(value, hard),) * 2)
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.execv(spec["argv"][0], spec["argv"])


def main(spec_text):
    spec = json.loads(spec_text)
    if spec.get("uid") is None:
        return limit_only(spec)
    channel = spec["fd"]
    os.umask(0o022)  # the folders made to show paths again must be open to the job (the grader's is 077)
    had = {"network": False, "mounts": False, "processes": False}
    if spec.get("namespaces", True):  # False: as on a machine that allows none (the tests)
        had["network"] = isolate_network()
        try:
            _call("unshare", CLONE_NEWIPC)
        except OSError:
            pass
        try:
            _call("unshare", CLONE_NEWUTS)
            _call("sethostname", b"grading", ctypes.c_size_t(7))  # never without the namespace: the machine's name
        except OSError:
            pass
        had["mounts"] = arrange_mounts(spec["hide"], spec["private"], [tuple(e) for e in spec["expose"]])
        had["processes"] = had["mounts"] and hide_other_processes()
    message = {"confined": had}
    if spec["require_mounts"] and not had["mounts"]:
        message["refused"] = "no mount namespace could be made, and this job needs one"
    os.write(channel, (json.dumps(message) + "\n").encode())
    if "refused" in message:
        return REFUSED
    os.chdir(spec["box"])
    become(spec["uid"], spec["gid"], spec["rlimits"])
    if os.getppid() != spec["parent"]:  # the grader died before PR_SET_PDEATHSIG took hold
        return REFUSED
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.execv(spec["argv"][0], spec["argv"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
