"""BIDS validation of the input dataset: bids-validator-deno where installed, else a minimal built-in check.

The caller prints which validator ran, so that a user knows how much a "valid" means. An error the validator
ties to a file in a subject's folder fails only the images it concerns (reason `bids_invalid`); any other error
(no dataset_description.json, an invalid layout, a broken file at the root) stops the run. A warehouse of
100,000 scans always holds a few broken files, and they must not block the others.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

MAX_ERRORS_SHOWN = 10
FLAIR_NAME = re.compile(r"^sub-[a-zA-Z0-9]+(_ses-[a-zA-Z0-9]+)?(_[a-z]+-[a-zA-Z0-9]+)*_FLAIR\.nii(\.gz)?$")
SUBJECT_PATH = re.compile(r"^/sub-[^/]+/.")
IMAGE_EXTENSION = re.compile(r"\.nii(\.gz)?$|\.json$")


@dataclass(frozen=True)
class Finding:
    """One issue the validator reported, with its location as the validator writes it ('/sub-01/anat/...')."""

    code: str
    severity: str  # error | warning
    location: str | None = None  # None: the dataset as a whole
    message: str = ""
    affects: tuple[str, ...] = ()  # files the issue applies to (a sidecar's images)

    def text(self) -> str:
        """E.g. 'NIFTI_HEADER_UNREADABLE: /sub-02/anat/sub-02_FLAIR.nii.gz: We were unable to parse header data'."""
        return ": ".join(part for part in (self.code, self.location or "(dataset)", self.message) if part)

    @property
    def file_level(self) -> bool:
        """Tied to a file in a subject's folder (it fails that file's images only); any other error stops the run.

        >>> Finding("JSON_INVALID", "error", "/sub-01/anat/sub-01_FLAIR.json").file_level
        True
        >>> Finding("MISSING_DATASET_DESCRIPTION", "error").file_level
        False
        >>> Finding("X", "error", "/participants.tsv").file_level
        False
        """
        return bool(self.location and SUBJECT_PATH.match(self.location))

    def concerns(self, relpath: str) -> bool:
        """Whether it is about the image at relpath: the image itself, a file it affects, or the image's sidecar.

        >>> sidecar = Finding("JSON_INVALID", "error", "/sub-01/anat/sub-01_FLAIR.json")
        >>> sidecar.concerns("sub-01/anat/sub-01_FLAIR.nii.gz"), sidecar.concerns("sub-01/anat/sub-01_T1w.nii.gz")
        (True, False)
        """
        image = "/" + relpath
        if image == self.location or image in self.affects:
            return True
        return self.location is not None and IMAGE_EXTENSION.sub("", self.location) == IMAGE_EXTENSION.sub(
            "", image
        )


@dataclass
class ValidationReport:
    validator: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def dataset_errors(self) -> list[Finding]:
        """The errors that stop the run (exit 16)."""
        return [f for f in self.errors if not f.file_level]

    @property
    def ok(self) -> bool:
        return not self.errors

    def errors_for(self, relpath: str) -> list[str]:
        """The file-level errors about one image, as text for its row (status failed, reason bids_invalid)."""
        return [f.text() for f in self.errors if f.file_level and f.concerns(relpath)]

    def summary(self) -> str:
        """One line: counts, and the error codes with how often each occurs.

        >>> ValidationReport("v", [Finding("A", "error", "/sub-1/x"), Finding("A", "error", "/sub-2/x"),
        ...                        Finding("W", "warning")]).summary()
        '2 error(s) (0 dataset-level, 2 in 2 file(s): A x2), 1 warning(s)'
        """
        errors = self.errors
        in_files = [f for f in errors if f.file_level]
        codes = ", ".join(f"{code} x{n}" for code, n in Counter(f.code for f in errors).most_common())
        return (
            f"{len(errors)} error(s) ({len(errors) - len(in_files)} dataset-level, {len(in_files)} in "
            f"{len({f.location for f in in_files})} file(s){': ' + codes if codes else ''}), "
            f"{len(self.findings) - len(errors)} warning(s)"
        )

    def write(self, path: Path) -> None:
        """Every finding (errors and warnings), for the run's logs/."""
        from flairqc_app import atomic

        atomic.write_json(
            path,
            {
                "validator": self.validator,
                "summary": self.summary(),
                "findings": [asdict(f) for f in self.findings],
            },
        )


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
    proc = subprocess.run([executable, "--format", "json", str(bids_dir)], capture_output=True, text=True)
    name = f"bids-validator-deno {version}".strip()
    try:
        payload = json.loads(proc.stdout)["issues"]
        issues, messages = payload["issues"], payload.get("codeMessages", {})
    except (json.JSONDecodeError, KeyError, TypeError):
        if proc.returncode == 0:
            return ValidationReport(name)
        detail = f"validator exited {proc.returncode}: {proc.stderr.strip()[:500]}"
        return ValidationReport(name, [Finding("VALIDATOR_FAILED", "error", None, detail)])
    return ValidationReport(name, [deno_finding(issue, messages) for issue in issues])


def deno_finding(issue: dict, messages: dict[str, str]) -> Finding:
    """A validator issue: its own message when it has one, else the text the validator gives its code."""
    code = str(issue.get("code")) + (f"/{issue['subCode']}" if issue.get("subCode") else "")
    message = str(issue.get("issueMessage") or messages.get(str(issue.get("code")), ""))
    affects = issue.get("affects") or []
    return Finding(
        code,
        str(issue.get("severity", "error")),
        issue.get("location") or None,
        " ".join(message.split())[:300],
        tuple(str(a) for a in affects),
    )


def builtin_check(bids_dir: Path) -> ValidationReport:
    """What flairqc itself needs: a dataset_description.json with Name and BIDSVersion, subjects, FLAIR names."""
    report = ValidationReport("built-in minimal check (bids-validator-deno not installed)")
    found = report.findings
    description = bids_dir / "dataset_description.json"
    try:
        payload = json.loads(description.read_text(encoding="utf-8"))
        for key in ("Name", "BIDSVersion"):
            if key not in payload:
                found.append(
                    Finding(
                        "JSON_KEY_REQUIRED",
                        "error",
                        "/dataset_description.json",
                        f"required field {key} missing",
                    )
                )
    except FileNotFoundError:
        found.append(
            Finding(
                "MISSING_DATASET_DESCRIPTION",
                "error",
                None,
                f"{description} is missing: a BIDS dataset needs one at its root",
            )
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        found.append(Finding("JSON_INVALID", "error", "/dataset_description.json", f"not valid JSON ({exc})"))
    if not any(p.is_dir() for p in bids_dir.glob("sub-*")):
        found.append(Finding("NO_SUBJECTS", "error", None, f"{bids_dir} has no sub-* folder"))
    for path in bids_dir.glob("sub-*/**/anat/*FLAIR*.nii*"):
        if not FLAIR_NAME.match(path.name) or not path.name.startswith(path.parts[len(bids_dir.parts)] + "_"):
            found.append(
                Finding(
                    "INVALID_FLAIR_NAME",
                    "error",
                    "/" + path.relative_to(bids_dir).as_posix(),
                    "not a valid BIDS FLAIR file name",
                )
            )
    return report
