"""Atomic writes: a file is either absent, the old version, or the complete new version.

Everything flairqc writes goes through here, so that Ctrl-C, a kill or a parallel job never leaves a
half-written file that a later run would trust. Files get the permissions the umask allows (like `open`), and a
failed write raises an OSError that names the file it was writing (a full disk says where).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib


def current_umask() -> int:
    """The process umask (os.umask can only be read by setting it).

    >>> old = os.umask(0o077); current_umask() == 0o077, os.umask(old) == 0o077
    (True, True)
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_files(files: dict[Path, bytes]) -> None:
    """Write every file to a temporary name beside it, then rename them all: a failure while writing (a full
    disk) leaves every target as it was, so files that belong together (a table and its report) stay a pair."""
    mode = 0o666 & ~current_umask()
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_stage(Path(path), data, mode), Path(path)))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise


def _stage(path: Path, data: bytes, mode: int) -> str:
    """A complete, fsynced temporary copy of `data` beside `path`; an OSError names `path`."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        return tmp
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename != str(path):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over the target."""
    write_files({Path(path): data})


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def write_json(path: Path, payload: Any) -> None:
    write_bytes(path, json_bytes(payload))


def write_nifti(path: Path, img: nib.Nifti1Image) -> None:
    """Gzipped NIfTI with a zero gzip timestamp, so the same image gives the same bytes."""
    raw = io.BytesIO()
    file_map = nib.Nifti1Image.make_file_map({"image": raw, "header": raw})
    img.to_file_map(file_map)
    write_bytes(path, gzip.compress(raw.getvalue(), compresslevel=6, mtime=0))
