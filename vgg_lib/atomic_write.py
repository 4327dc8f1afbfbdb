"""Write a file so that a killed process leaves either the old file or the complete new one."""

import os
import time
from pathlib import Path

STALE_AFTER_SECONDS = 24 * 3600  # a temporary file this old is a leftover, whoever wrote it


def temporary_path(path, pid=None):
    """The temporary file ``write_atomically`` writes first: ``.<name>.<pid>.tmp`` beside ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp")


def _process_alive(pid):
    if pid == os.getpid():
        return False  # ours, but not being written now: left by an earlier, interrupted write
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def remove_stale_temporaries(path):
    """Delete the temporary files that interrupted writes of ``path`` left behind (a process
    killed between writing and renaming): those of processes that no longer run on this
    machine, and any older than a day (written elsewhere, e.g. by another Colab session on the
    same Google Drive folder). Returns the paths removed."""
    path = Path(path)
    removed = []
    prefix, suffix = f".{path.name}.", ".tmp"
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for candidate in candidates:
        name = candidate.name
        pid = name[len(prefix):-len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
        if not pid.isdigit():
            continue
        try:
            old = time.time() - candidate.stat().st_mtime > STALE_AFTER_SECONDS
            if old or not _process_alive(int(pid)):
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue  # gone already, or not ours to delete: the write itself still works
    return removed


def write_atomically(path, write):
    """Call ``write(handle)`` on a temporary file beside ``path``, then ``os.replace`` it into
    place. A crash or an exception in ``write`` never leaves a half-written ``path``; the
    temporary files of earlier writes that were killed are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
