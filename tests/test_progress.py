"""The terminal: one line per image, a tqdm bar on a TTY (plain lines otherwise), -q errors only, -v stage
timings, and a summary with the counts by verdict and the group report's path."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from flairqc_app.image_result import Outcome
from flairqc_app.progress import Progress, SkipFlagged, image_line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def outcomes() -> list[Outcome]:
    return [
        Outcome("sub-01_FLAIR", "ok", category="tier2", verdict="Tier 2 (contrast 1)", seconds=14.2),
        Outcome(
            "sub-02_FLAIR",
            "skipped",
            category="skipped",
            verdict="Skipped: straight reject by the input gate",
            seconds=0.4,
        ),
        Outcome("sub-03_FLAIR", "ok", reused=True, category="tier1", verdict="Tier 1", seconds=20.0),
    ]


def test_plain_lines_and_summary_off_a_terminal() -> None:
    stream = io.StringIO()
    shown = Progress(stream=stream)
    shown.start(3)
    for outcome in outcomes():
        shown.image_done(outcome)
    shown.group_done(["tier1"], Path("/out/group_FLAIR.html"))  # the participant level's images are summed
    shown.finish()
    assert stream.getvalue().splitlines() == [
        "[1/3] sub-01_FLAIR  tier 2 (contrast 1)  14 s",
        "[2/3] sub-02_FLAIR  Skipped: straight reject by the input gate  0 s",
        "[3/3] sub-03_FLAIR  tier 1  done before",
        "3 images: 1 tier 1, 1 tier 2, 1 skipped; report: /out/group_FLAIR.html",
    ]


def test_a_bar_with_rate_and_eta_on_a_terminal() -> None:
    stream = Terminal()
    shown = Progress(stream=stream)
    shown.start(3)
    for outcome in outcomes():
        shown.image_done(outcome)
    shown.finish()
    text = stream.getvalue()
    assert "3/3" in text and "image/s" in text and "<" in text  # tqdm's n/N, rate and elapsed<remaining
    assert image_line(1, 3, "sub-01_FLAIR", "Tier 2 (contrast 1)", 14.2) in text


def test_quiet_prints_nothing() -> None:
    stream = Terminal()
    shown = Progress(quiet=True, stream=stream)
    shown.start(3)
    for outcome in outcomes():
        shown.image_done(outcome)
    shown.group_done(["tier1"], Path("/out/group_FLAIR.html"))
    shown.finish()
    assert stream.getvalue() == ""


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_printed_lines_reach_the_log_file_not_the_console() -> None:
    """A handler on the flairqc logger itself (the CLI turns propagation off, so caplog may not see it)."""
    logger = logging.getLogger("flairqc")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        shown = Progress(stream=io.StringIO())
        shown.start(1)
        shown.image_done(outcomes()[0])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    (record,) = [r for r in handler.records if "sub-01_FLAIR" in r.getMessage()]
    assert not SkipFlagged().filter(record)
    assert SkipFlagged().filter(logging.LogRecord("flairqc", logging.INFO, "", 0, "other", None, None))
