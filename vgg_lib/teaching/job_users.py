"""One unprivileged user per grading job (the "user" sandbox, when the grader runs as root).

A job runs as a uid and gid that no account, group or running process has (FIRST_ID and up, far
above any account's). Whatever it starts, double-forked daemons included, keeps that uid, since
changing it takes privileges the job does not have; so its processes are found, and killed, by
that number, and so are the files it leaves in the machine's shared folders (/tmp, /var/tmp,
/dev/shm). Standard library only: vgg_lib/teaching/reaper.py loads this file without vgg_lib.
"""

import grp
import os
import pwd
import random
import shutil
import signal
import stat
import time

FIRST_ID = 2_000_000_000  # job uids and gids: FIRST_ID .. FIRST_ID + ID_COUNT - 1
ID_COUNT = 100_000_000
SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")  # writable by every user
MAX_ENTRIES = 200_000  # what remove_files_of looks at, at most


def _ids_of(pid):
    """The real, effective, saved and filesystem uids of ``pid`` (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    return {int(n) for n in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


def processes_of(uid):
    """Pids of every process running with ``uid`` as any of its user ids."""
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and uid in _ids_of(pid)]


def is_job_id(number):
    return FIRST_ID <= number < FIRST_ID + ID_COUNT


def free_id():
    """A number that is neither a user nor a group of this machine, nor any running process's uid."""
    running = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            running |= _ids_of(pid)
    for _ in range(1000):
        number = FIRST_ID + random.randrange(ID_COUNT)
        if number in running:
            continue
        try:
            pwd.getpwuid(number)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(number)
            continue
        except KeyError:
            return number
    raise RuntimeError("no free user id for a grading job")


def kill_user(uid, rounds=50):
    """SIGKILL every process of ``uid`` until none is left; True when none is. Each round a
    child that has become ``uid`` sends ``kill(-1, SIGKILL)``, which reaches all of that user's
    processes at once (a fork bomb cannot outrun it), then stragglers are killed one by one."""
    for _ in range(rounds):
        pids = processes_of(uid)
        if not pids:
            return True
        child = os.fork()
        if child == 0:  # only system calls here: the grader may have threads
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
    return not processes_of(uid)


def remove_files_of(uid, folders=SHARED_FOLDERS):
    """Delete what ``uid`` left in the shared folders: every entry it owns, looking only into
    folders anyone may write to (or that it owns). Returns the paths removed."""
    removed, seen = [], 0
    pending = [f for f in folders if os.path.isdir(f) and not os.path.islink(f)]
    while pending and seen < MAX_ENTRIES:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid == uid:
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        continue
                removed.append(entry.path)
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH:
                pending.append(entry.path)
    return removed


def clean_up(uid):
    """Kill everything ``uid`` runs and delete what it left in the shared folders."""
    killed = kill_user(uid)
    remove_files_of(uid)
    return killed
