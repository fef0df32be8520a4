"""Read and write tab-separated tables: flairqc's BIDS TSVs (tabs, header, `n/a`) with their JSON data
dictionaries, and the training and synthetic tables, all through `rows_text`/`write_rows` and `read_rows`."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flairqc_app import atomic
from flairqc_app.schema import COLUMN_NAMES, COLUMNS, COLUMNS_BY_NAME

NA = "n/a"


def format_cell(value: Any, float_format: str = ".6g", keep_nan: bool = False) -> str:
    """The text of a value: n/a for None (and for NaN or infinity unless `keep_nan`), floats in
    `float_format`, anything else as str.

    >>> [format_cell(v) for v in (None, float("nan"), 0.1234567, 3, "T1w")]
    ['n/a', 'n/a', '0.123457', '3', 'T1w']
    >>> format_cell(float("nan"), ".4f", keep_nan=True), format_cell(0.5, ".4f")
    ('nan', '0.5000')
    """
    if value is None or (not keep_nan and isinstance(value, float) and not math.isfinite(value)):
        return NA
    return format(value, float_format) if isinstance(value, float) else str(value)


def format_value(value: Any) -> str:
    r"""BIDS TSV text for a value: n/a for missing, no tabs or newlines, floats to 6 significant digits.

    >>> [format_value(v) for v in (True, float("inf"), "two\tlines\n")]
    ['1', 'n/a', 'two lines']
    """
    if isinstance(value, bool):
        return str(int(value))
    text = format_cell(value)
    return " ".join(text.split()) if any(c in text for c in "\t\r\n") else text


def rows_text(
    columns: Iterable[str],
    rows: Iterable[dict[str, Any]],
    cell: Callable[[Any], str] = format_cell,
    quoted: bool = False,
) -> str:
    r"""A header and one line per row (its values by column through `cell`, a missing one as None), each line
    ended by a newline; `quoted`: csv's minimal quoting (a cell holding a tab, quote or newline is quoted).

    >>> rows_text(("a", "b"), [{"a": 1.5}, {"a": "x", "b": 2}])
    'a\tb\n1.5\tn/a\nx\t2\n'
    """
    columns = list(columns)
    lines = [columns] + [[cell(row.get(name)) for name in columns] for row in rows]
    if not quoted:
        return "".join("\t".join(line) + "\n" for line in lines)
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\n").writerows(lines)
    return buffer.getvalue()


def write_rows(
    path: Path,
    columns: Iterable[str],
    rows: Iterable[dict[str, Any]],
    cell: Callable[[Any], str] = format_cell,
    quoted: bool = False,
) -> None:
    """Write `rows_text` to `path` (UTF-8, newlines as written)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(rows_text(columns, rows, cell, quoted))


def _reader(handle: Any, quoted: bool) -> csv.DictReader:
    return csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)


def read_rows(path: Path, quoted: bool = False) -> list[dict[str, str]]:
    """The rows of a table as text by column (cells past the header under None, missing ones None);
    `quoted`: undo csv's quoting, for the tables written with it."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(_reader(handle, quoted))


def read_columns(path: Path) -> list[str]:
    """The header of a table (none for an empty file)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(_reader(handle, quoted=False).fieldnames or [])


def parse_value(column: str, text: str) -> Any:
    """The typed value of a TSV cell; text that does not parse (e.g. '3T' in a float column) stays text."""
    if text == NA or text == "":
        return None
    spec = COLUMNS_BY_NAME.get(column)
    if spec is None or spec.dtype is str:
        return text
    try:
        return spec.dtype(float(text)) if spec.dtype is int else spec.dtype(text)
    except ValueError:
        return text


def to_text(rows: Iterable[dict[str, Any]]) -> str:
    return rows_text(COLUMN_NAMES, rows, format_value)


def table_files(path: Path, rows: Iterable[dict[str, Any]]) -> dict[Path, bytes]:
    """The JSON data dictionary (same stem) and the TSV, dictionary first, for atomic.write_files."""
    return {
        path.with_suffix(".json"): atomic.json_bytes(data_dictionary()),
        path: to_text(rows).encode("utf-8"),
    }


def write_table(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write the TSV and its JSON data dictionary atomically, as a pair."""
    atomic.write_files(table_files(path, rows))


def read_table(path: Path) -> list[dict[str, Any]]:
    return [{k: parse_value(k, v) for k, v in row.items() if k is not None} for row in read_rows(path)]


def data_dictionary() -> dict[str, dict]:
    return {c.name: c.dictionary_entry() for c in COLUMNS}
