"""Shared fixtures: the real sample data beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: ICDAR 2015 toy images and SROIE receipts (see its README)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"sample data not found at {SHARED_DATA}; the repository expects ../shared/data"
        )
    return SHARED_DATA
