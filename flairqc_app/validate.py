"""BIDS validation of the input dataset: bids-validator-deno where installed, else a minimal built-in check.

The caller prints which validator ran, so that a user knows how much a "valid" means.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import metadata
from dataclasses import dataclass, field
from pathlib import Path

MAX_ERRORS_SHOWN = 10
FLAIR_NAME = re.compile(
    r"^sub-[a-zA-Z0-9]+(_ses-[a-zA-Z0-9]+)?(_[a-z]+-[a-zA-Z0-9]+)*_FLAIR\.nii(\.gz)?$"
)


@dataclass
class ValidationReport:
    validator: str
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_dataset(bids_dir: Path) -> ValidationReport:
    executable = shutil.which("bids-validator-deno")
    if executable:
        return run_deno_validator(executable, bids_dir)
    return builtin_check(bids_dir)


def run_deno_validator(executable: str, bids_dir: Path) -> ValidationReport:
    try:
        version = metadata.version("bids-validator-deno")
    except metadata.PackageNotFoundError:
        version = "(version unknown)"
    proc = subprocess.run([executable, "--format", "json", "--ignoreNiftiHeaders", str(bids_dir)],
                          capture_output=True, text=True)
    name = f"bids-validator-deno {version}".strip()
    try:
        found = json.loads(proc.stdout)["issues"]
        issues, messages = found["issues"], found.get("codeMessages") or {}
    except (json.JSONDecodeError, KeyError, TypeError):
        if proc.returncode == 0:
            return ValidationReport(name)
        return ValidationReport(name, [f"validator exited {proc.returncode}: {proc.stderr.strip()[:500]}"])
    return ValidationReport(name, [issue_text(issue, messages) for issue in issues if issue.get("severity") == "error"])


def issue_text(issue: dict, messages: dict[str, str]) -> str:
    """One line per validator error: code, where (a file, or what a dataset-level issue affects), and what.

    >>> issue_text({"code": "MISSING_DATASET_DESCRIPTION", "affects": ["/dataset_description.json"]},
    ...            {"MISSING_DATASET_DESCRIPTION": "A dataset_description.json file is required"})
    'MISSING_DATASET_DESCRIPTION: /dataset_description.json: A dataset_description.json file is required'
    """
    code = f"{issue.get('code')}{'/' + issue['subCode'] if issue.get('subCode') else ''}"
    where = issue.get("location") or ", ".join(issue.get("affects") or [])
    what = (issue.get("issueMessage") or messages.get(issue.get("code"), "")).strip().split("\n")[0]
    return ": ".join(part for part in (code, where, what) if part)


def builtin_check(bids_dir: Path) -> ValidationReport:
    """What flairqc itself needs: a dataset_description.json with Name and BIDSVersion, subjects, FLAIR names."""
    report = ValidationReport("built-in minimal check (bids-validator-deno not installed)")
    description = bids_dir / "dataset_description.json"
    try:
        payload = json.loads(description.read_text(encoding="utf-8"))
        for key in ("Name", "BIDSVersion"):
            if key not in payload:
                report.errors.append(f"{description}: required field {key} missing")
    except FileNotFoundError:
        report.errors.append(f"{description}: missing")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.errors.append(f"{description}: not valid JSON ({exc})")
    if not any(p.is_dir() for p in bids_dir.glob("sub-*")):
        report.errors.append(f"{bids_dir}: no sub-* folder")
    for path in bids_dir.glob("sub-*/**/anat/*FLAIR*.nii*"):
        if not FLAIR_NAME.match(path.name) or not path.name.startswith(path.parts[len(bids_dir.parts)] + "_"):
            report.errors.append(f"{path.relative_to(bids_dir)}: not a valid BIDS FLAIR file name")
    return report
