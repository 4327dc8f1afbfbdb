"""The fake google.colab of the Colab stand-ins: drive.mount records the call and makes the folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

STUB = Path(__file__).resolve().parent / "colab_stub"


def _mount(tmp_path, mountpoint, **env):
    code = f"from google.colab import drive; drive.mount({str(mountpoint)!r})"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COLAB_STANDIN")}
    environment.update(PYTHONPATH=str(STUB), COLAB_STANDIN_DRIVE_LOG=str(tmp_path / "log"), **env)
    return subprocess.run([sys.executable, "-c", code], env=environment, check=True,
                          capture_output=True, text=True).stdout


def test_mount_makes_my_drive_where_asked_and_records_the_call(tmp_path):
    assert "Mounted at" in _mount(tmp_path, tmp_path / "content" / "drive")
    assert (tmp_path / "content" / "drive" / "MyDrive").is_dir()
    call = json.loads((tmp_path / "log").read_text())
    assert call["mountpoint"] == str(tmp_path / "content" / "drive") and call["drive"] is None


def test_with_a_stand_in_drive_the_mount_point_links_to_it(tmp_path):
    drive = tmp_path / "run" / "google-drive"
    for _ in range(2):  # mounting again, as a re-run cell does, is fine
        _mount(tmp_path, tmp_path / "content" / "drive", COLAB_STANDIN_DRIVE=str(drive))
    assert (tmp_path / "content" / "drive").resolve() == drive.resolve()
    assert (drive / "MyDrive").is_dir()
    assert len((tmp_path / "log").read_text().splitlines()) == 2
