"""Write a file so that a killed process leaves either the old file or the complete new one."""

import os
from pathlib import Path


def write_atomically(path, write):
    """Call ``write(handle)`` on a temporary file beside ``path``, then ``os.replace`` it into
    place. A crash or an exception in ``write`` never leaves a half-written ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
