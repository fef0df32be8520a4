"""The run's scratch folder (`flairqc-work-*`), removed however the run ends.

The run removes it itself when it returns or is interrupted. A run killed outright (kill -9, the OOM killer)
cannot, so a guardian process holds the read end of a pipe whose write end only the run (and its forked workers)
hold: when they are all gone the pipe reads end-of-file and the guardian removes the folder, then exits.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "flairqc-work-"
GUARDIAN_EXIT_SECONDS = 10.0


@contextmanager
def scratch_dir(root: Path) -> Iterator[Path]:
    """A new `flairqc-work-*` folder in `root`, removed on exit and by a guardian if this process is killed."""
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
    guardian = subprocess.Popen(
        [sys.executable, "-m", "flairqc_app.scratch", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        assert guardian.stdin is not None
        guardian.stdin.close()
        try:
            guardian.wait(GUARDIAN_EXIT_SECONDS)
        except subprocess.TimeoutExpired:  # forked workers still hold the pipe; they die with this process
            pass


def guard(path: Path) -> None:
    """Guardian: wait until every holder of stdin's write end is gone, then remove `path`. Signals to the run's
    process group (Ctrl-C, a scheduler's SIGTERM) are the run's to handle, not the guardian's."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while sys.stdin.buffer.read(65536):
        pass
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    guard(Path(sys.argv[1]))
