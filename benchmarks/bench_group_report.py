"""Time and size of the group report for 10,000 synthetic rows (targets: <= 30 s, < 15 MB).

Run: python benchmarks/bench_group_report.py [n_rows]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_report_support import synthetic_rows  # noqa: E402

from flairqc_app.report import render_group_report  # noqa: E402

TARGET_SECONDS = 30.0
TARGET_MB = 15.0


def main(n_rows: int = 10_000) -> int:
    rows = synthetic_rows(n_rows)
    start = time.perf_counter()
    page = render_group_report(rows)
    seconds = time.perf_counter() - start
    megabytes = len(page.encode("utf-8")) / 1e6
    print(f"group report, {n_rows} rows: {seconds:.2f} s, {megabytes:.2f} MB "
          f"(targets: <= {TARGET_SECONDS:.0f} s, < {TARGET_MB:.0f} MB)")
    return 0 if seconds <= TARGET_SECONDS and megabytes < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:2])))
