"""Watching one running grading job: its time and resident memory, what its runner says over
the pipe, and killing everything it started (vgg_lib/teaching/jobs.py starts it).

A job's processes are found by its user id in the user sandbox (no process can shed it), else as
the descendants of its first process (bubblewrap's process namespace holds them all; without a
sandbox the runner is a subreaper, and processes carrying the job's token are killed too).
Memory is resident memory, summed over them and checked every POLL_SECONDS: over the limit, the
largest process (the kernel, as a rule) is killed and the runner reports; still over, all are.
"""

import json
import os
import select
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from . import job_users
from . import sandbox as sandboxes

MAX_MESSAGES_BYTES = (128 << 20) + (1 << 20)  # the executed notebook, and a little
POLL_SECONDS = 0.2


@dataclass
class Finished:
    """How a job ended, as the grader saw it, and what came back (all of it untrusted)."""

    returncode: int = 0  # of its first process; negative: killed by that signal
    timed_out: bool = False
    over_memory: bool = False  # the grader stopped it at the memory limit
    peak_mb: float = 0.0
    seconds: float = 0.0
    outcome: str = None  # the runner's last word, if it said one
    cell: int = None  # the last cell it said it started
    executed: str = None  # the executed notebook's text
    confined: dict = None  # what the user sandbox had (confine.py's first line)
    refused: str = None
    probe: dict = None
    results: bytes = b""
    results_problem: str = None
    log_tail: str = ""



def _rss_mb(pids):
    """Resident memory of ``pids`` together, and the largest of them."""
    page, total, largest = os.sysconf("SC_PAGE_SIZE"), 0, (-1, None)
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                resident = int(handle.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
        total += resident
        largest = max(largest, (resident, pid))
    return total / 2**20, largest[1]


def descendants(root):
    """``root`` and every process below it."""
    children = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat", "rb") as handle:
                    parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(pid))
            except (OSError, ValueError, IndexError):
                continue
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def _kill_carriers(token):
    """SIGKILL every process whose environment holds ``token`` (the no-sandbox case)."""
    marker = f"{sandboxes.TOKEN_VARIABLE}={token}".encode()
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


def read_regular(path, limit):
    """The bytes of ``path`` if it is a regular file (not a link, fifo, device): at most ``limit``+1."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{Path(path).name} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1)
    finally:
        os.close(fd)


def members(process, uid):
    """The pids of a running job."""
    return job_users.processes_of(uid) if uid is not None else descendants(process.pid)


def watch(process, read_end, uid, limits, stopping):
    """Wait for the job, reading its pipe, until it ends, runs out of time or memory, or
    ``stopping`` (a threading.Event) is set; a Finished."""
    finished, received, start = Finished(), bytearray(), time.monotonic()
    deadline = start + limits.seconds
    os.set_blocking(read_end, False)

    def drain():
        while True:
            try:
                data = os.read(read_end, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                return
            received.extend(data[:max(0, MAX_MESSAGES_BYTES - len(received))])

    while process.poll() is None and not stopping.is_set():
        if time.monotonic() >= deadline:
            finished.timed_out = True
            break
        if select.select([read_end], [], [], POLL_SECONDS)[0]:
            drain()
        memory, largest = _rss_mb(members(process, uid))
        finished.peak_mb = max(finished.peak_mb, memory)
        if memory > limits.memory_mb and largest:
            if finished.over_memory:  # killing the largest process was not enough
                break
            finished.over_memory = True
            try:
                os.kill(largest, signal.SIGKILL)  # the kernel, as a rule: the runner then reports
            except OSError:
                pass
    drain()
    finished.returncode = process.poll() if process.poll() is not None else -signal.SIGKILL
    finished.seconds = time.monotonic() - start
    read_messages(finished, bytes(received))
    return finished


def read_messages(finished, data):
    """Fill ``finished`` from the runner's JSON lines (untrusted: the kernel may write there too)."""
    for line in data.split(b"\n"):
        try:
            message = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        if not isinstance(message, dict):
            continue
        if "confined" in message and finished.confined is None:  # the first line, before any job code
            finished.confined = message["confined"] if isinstance(message["confined"], dict) else {}
            finished.refused = message.get("refused") if isinstance(message.get("refused"), str) else None
        elif isinstance(message.get("cell"), int):
            finished.cell = message["cell"]
        elif isinstance(message.get("outcome"), str):
            finished.outcome = message["outcome"]
        elif isinstance(message.get("executed"), str):
            finished.executed = message["executed"]
        elif isinstance(message.get("probe"), dict) and finished.probe is None:
            finished.probe = message["probe"]


def kill(process, uid):
    """Kill everything the job started (and, in the user sandbox, delete what its user left)."""
    if uid is not None:
        job_users.clean_up(uid)
    else:
        for pid in descendants(process.pid)[::-1]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
    process.wait()
    if process.token:
        _kill_carriers(process.token)
