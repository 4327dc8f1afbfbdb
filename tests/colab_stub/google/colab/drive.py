"""Stand-in for Colab's ``google.colab.drive``: ``mount`` records the call and makes the folder.

With ``COLAB_STANDIN_DRIVE`` set, the mount point becomes a link to that folder, so that a
stand-in run's "Google Drive" is fresh and lies inside the run's temporary folder while the
notebooks keep Colab's paths (``/content/drive/MyDrive/...``); without it the folder is made
where asked. ``COLAB_STANDIN_DRIVE_LOG``: a file that gets one JSON line per call.
"""

import json
import os
from pathlib import Path


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    mountpoint = Path(mountpoint)
    drive = os.environ.get("COLAB_STANDIN_DRIVE")
    if drive:
        Path(drive).mkdir(parents=True, exist_ok=True)
        mountpoint.parent.mkdir(parents=True, exist_ok=True)
        if mountpoint.is_symlink():
            mountpoint.unlink()
        if mountpoint.exists():
            raise ValueError(f"Mountpoint must not already contain files: {mountpoint}")
        mountpoint.symlink_to(drive, target_is_directory=True)
    (mountpoint / "MyDrive").mkdir(parents=True, exist_ok=True)
    log = os.environ.get("COLAB_STANDIN_DRIVE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"mountpoint": str(mountpoint), "force_remount": force_remount,
                                     "readonly": readonly, "drive": drive}) + "\n")
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms=86400000):
    """Colab writes pending files to Drive here; the stand-in's folder is always up to date."""
