"""Read and write flairqc's BIDS TSV tables (tabs, header, `n/a`) and their JSON data dictionaries."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable

from flairqc_app import atomic
from flairqc_app.schema import COLUMN_NAMES, COLUMNS, COLUMNS_BY_NAME

NA = "n/a"


def format_value(value: Any) -> str:
    """TSV text for a value: n/a for missing, no tabs or newlines, floats to 6 significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return " ".join(text.split()) if any(c in text for c in "\t\r\n") else text


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
    lines = ["\t".join(COLUMN_NAMES)]
    lines += ["\t".join(format_value(row.get(name)) for name in COLUMN_NAMES) for row in rows]
    return "\n".join(lines) + "\n"


def table_files(path: Path, rows: Iterable[dict[str, Any]]) -> dict[Path, bytes]:
    """The JSON data dictionary (same stem) and the TSV, dictionary first, for atomic.write_files."""
    return {path.with_suffix(".json"): atomic.json_bytes(data_dictionary()), path: to_text(rows).encode("utf-8")}


def write_table(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write the TSV and its JSON data dictionary atomically, as a pair."""
    atomic.write_files(table_files(path, rows))


def read_table(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [{k: parse_value(k, v) for k, v in row.items() if k is not None} for row in reader]


def data_dictionary() -> dict[str, dict]:
    return {c.name: c.dictionary_entry() for c in COLUMNS}
