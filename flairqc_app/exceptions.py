"""Every exception class of flairqc, in one module (as pybids' ``bids.exceptions``).

The CLI maps the usage errors to BEP027 exit codes (config.EXIT_*); the others are caught where they are
raised into a row, a message or an n/a cell.
"""

from __future__ import annotations

from flairqc_app import config


class UsageError(Exception):
    """A mistake of the user's (bad argument, missing input, unwritable output): one line and `exit_code`."""

    def __init__(self, message: str, exit_code: int = config.EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(BaseException):
    """SIGTERM (a plain kill, a SLURM or Kubernetes stop), raised in the main thread as Ctrl-C raises
    KeyboardInterrupt, so that the same clean-up runs: workers ended, scratch removed, finished rows kept."""


class DiscoveryError(UsageError):
    """A usage problem with the selection (unknown label, bad filter file, no BIDS dataset)."""


class ImageFailed(Exception):
    """A stage stops one image: `reason` is a schema.REASONS code, whose status (failed or skipped) the row
    takes; `trace` is the traceback of an unexpected error, for the crash file. The other images go on."""

    def __init__(self, reason: str, detail: str, trace: str | None = None):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.trace = trace


class GateFailure(Exception):
    """The input gate cannot read or use the image at all (reason code, detail)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class GateConfigError(ValueError):
    """A `--gate-config` file that cannot be used; the CLI says so and exits 64."""


class ModelError(Exception):
    """A models directory, manifest, model file or threshold file is unusable."""


class NotAvailable(Exception):
    """A metric that does not apply to this image (not an error): its message is the n/a reason."""
