"""The README documents every output column, every reason code and every exit code the code can produce."""

from pathlib import Path

from flairqc_app import config
from flairqc_app.schema import COLUMNS, REASONS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_column_is_documented():
    missing = [c.name for c in COLUMNS if f"| `{c.name}` |" not in README]
    assert not missing


def test_every_reason_is_documented_with_its_status():
    missing = [code for code, (status, _) in REASONS.items() if f"| `{code}` | {status} |" not in README]
    assert not missing


def test_every_exit_code_is_documented():
    codes = {v for k, v in vars(config).items() if k.startswith("EXIT_")}
    missing = [code for code in codes if f"\n| {code} |" not in README]
    assert not missing


def test_readme_names_the_ci_test_command():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "python -m pytest" in README and ci.strip().endswith("python -m pytest")
