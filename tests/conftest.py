"""Shared fixtures (the helpers they use, and the tests import, are in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import browser, build_models_dir


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return build_models_dir(tmp_path / "models")


@pytest.fixture(scope="session")
def chromium() -> str:
    found = browser()
    if found is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    return found
