"""What the terminal shows of a run: one readable line per image, a progress bar with rate and ETA when stderr
is a terminal (tqdm), plain lines otherwise, and a final summary with the counts by verdict and the report.

The lines also go to the log file; the console handler skips them (CONSOLE_SKIP), since they are printed here.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO

log = logging.getLogger("flairqc")
CONSOLE_SKIP = "flairqc_console_skip"


class SkipFlagged(logging.Filter):
    """For the console handler: drop the records that Progress already printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, CONSOLE_SKIP, False)


def image_line(
    done: int, total: int, name: str, verdict: str, seconds: float | None, reused: bool = False
) -> str:
    """E.g. "[ 12/240] sub-01_FLAIR  tier 2 (contrast 1)  14 s" (counts padded so that lines align).

    >>> image_line(12, 240, "sub-01_FLAIR", "Tier 2 (contrast 1)", 14.2)
    '[ 12/240] sub-01_FLAIR  tier 2 (contrast 1)  14 s'
    >>> image_line(3, 240, "sub-02_FLAIR", "Tier 1", 0.1, reused=True)
    '[  3/240] sub-02_FLAIR  tier 1  done before'
    """
    width = len(str(total))
    when = "done before" if reused else ("" if seconds is None else f"{seconds:.0f} s")
    shown = verdict[:1].lower() + verdict[1:] if verdict.startswith("Tier") else verdict
    return f"[{done:>{width}}/{total}] {name}  {shown}  {when}".rstrip()


def summary(categories: Iterable[str], report: Path | None) -> str:
    """E.g. "240 images: 100 tier 1, 80 tier 2, 40 tier 3, 20 failed; report: OUT/group_FLAIR.html".

    >>> summary(["tier1", "tier1", "failed"], None)
    '3 images: 2 tier 1, 1 failed'
    """
    from flairqc_app.report.verdict import CATEGORIES  # the report package loads jinja2: not at start-up

    counts = Counter(categories)
    parts = [
        f"{counts[key]} {label[:1].lower() + label[1:]}"
        for key, (label, _) in CATEGORIES.items()
        if counts[key]
    ]
    text = f"{counts.total()} image{'s' if counts.total() != 1 else ''}: " + ", ".join(parts)
    return text + (f"; report: {report}" if report else "")


class Progress:
    """Reports images as they end (a tqdm bar on a terminal, plain lines elsewhere, nothing when quiet), then
    the summary: this run's images when the participant level ran, else the group's, and the group report."""

    def __init__(self, quiet: bool = False, stream: IO[str] | None = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.total = self.done = 0
        self.bar = None
        self.categories: list[str] = []
        self.group_categories: list[str] = []
        self.report: Path | None = None

    def start(self, total: int) -> None:
        self.total = total
        if not self.quiet and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                file=self.stream,
                unit="image",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]",
            )

    def image_done(self, outcome) -> None:  # an image_result.Outcome
        self.done += 1
        self.categories.append(outcome.category)
        line = image_line(
            self.done, self.total, outcome.bids_name, outcome.verdict, outcome.seconds, outcome.reused
        )
        log.info(line, extra={CONSOLE_SKIP: True})
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
            self.bar.update(1)
        else:
            print(line, file=self.stream, flush=True)

    def group_done(self, categories: list[str], report: Path) -> None:
        self.group_categories, self.report = categories, report

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        categories = self.categories or self.group_categories
        if not categories:
            return
        text = summary(categories, self.report)
        log.info(text, extra={CONSOLE_SKIP: True})
        if not self.quiet:
            print(text, file=self.stream, flush=True)
