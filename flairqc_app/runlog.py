"""The run's log, on the console and in a file in <output_dir>/logs/, and the effective settings beside it."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from flairqc_app import __version__, atomic
from flairqc_app.config import Settings
from flairqc_app.progress import SkipFlagged

log = logging.getLogger("flairqc")


class LogFileHandler(logging.FileHandler):
    """The run's log file; when it cannot be written (a full disk) it says so once and goes quiet, instead of
    logging's traceback on every record. The console keeps every message."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        exc = sys.exc_info()[1]
        log.removeHandler(self)
        print(
            f"flairqc: warning: cannot write the log file {self.baseFilename}: {exc}; logging to the console "
            "only",
            file=sys.stderr,
        )


def setup_logging(verbosity: int, output_dir: Path, levels: Sequence[str], quiet: bool = False) -> Path:
    """INFO on stderr by default, DEBUG (stage timings) with -v, errors only with -q; the log file in logs/
    always has everything, and is returned. Per-image lines are printed by progress.Progress, not by the
    console handler."""
    log.setLevel(logging.DEBUG)
    log.handlers.clear()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR if quiet else logging.DEBUG if verbosity else logging.INFO)
    console.addFilter(SkipFlagged())
    console.setFormatter(logging.Formatter("%(asctime)s flairqc %(levelname)s: %(message)s", "%H:%M:%S"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = output_dir / "logs" / f"flairqc-{'-'.join(levels)}-{stamp}-{os.getpid()}.log"
    logfile = LogFileHandler(path, encoding="utf-8")
    logfile.setLevel(logging.DEBUG)
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(processName)s: %(message)s"))
    log.addHandler(console)
    log.addHandler(logfile)
    log.propagate = False
    return path


def write_settings(settings: Settings, log_file: Path) -> Path:
    """The run's settings beside its log (`<log>.settings.json`), as MRIQC saves its config per run: what a
    run was asked to do can be read back, and repeated from anywhere (every path made absolute); what a run
    derives from them, such as fewer parallel images under --mem, goes to the log. A full disk leaves a
    warning, as for the log file; the run goes on and meets the disk where it writes its outputs."""
    path = log_file.with_name(log_file.name.removesuffix(".log") + ".settings.json")
    try:
        values = {
            key: value.absolute() if isinstance(value, Path) else value
            for key, value in asdict(settings).items()
        }
        atomic.write_json(path, {"flairqc_version": __version__, "settings": values})
    except OSError as exc:
        log.warning("cannot write the settings file %s: %s", path, exc.strerror or exc)
    return path
