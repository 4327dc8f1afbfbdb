"""Clean up after a grader that died: ``.../reaper.py`` reads what the grader tells it on stdin.

Started by vgg_lib/teaching/jobs.py once per grading run, never by hand, as a script (it loads
job_users.py beside it, not vgg_lib). The grader writes one JSON line when a job starts,
``{"job": n, "uid": ..., "pgid": ..., "scratch": ...}`` (uid in the "user" sandbox), one when it
is over, ``{"job": n, "done": true}``, and closes the pipe when grading ends. If the pipe closes
while jobs run, the grader was killed: the reaper kills their processes (by uid, and their
process groups), deletes the files their users left in the shared folders, removes the run's
scratch folder, and exits. It has
its own session, so a Ctrl-C meant for the grader does not stop it first.
"""

import importlib.util
import json
import os
import shutil
import signal
import sys
from pathlib import Path


def _job_users():
    spec = importlib.util.spec_from_file_location("job_users", Path(__file__).with_name("job_users.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    running, scratch = {}, None
    for line in sys.stdin:
        try:
            message = json.loads(line)
            number = message["job"]
        except (ValueError, TypeError, KeyError):
            continue
        if message.get("done"):
            running.pop(number, None)
        else:
            running[number] = message
            scratch = message.get("scratch", scratch)
    job_users = _job_users() if running else None
    for job in running.values():
        if job.get("uid") is not None:
            job_users.clean_up(int(job["uid"]))
        try:
            os.killpg(int(job["pgid"]), signal.SIGKILL)
        except (OSError, KeyError, TypeError, ValueError):
            pass
    if running and scratch and Path(scratch).name.startswith("vgg-grade-"):
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
