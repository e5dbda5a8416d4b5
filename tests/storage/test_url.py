"""Storage URL resolution and redaction."""

from __future__ import annotations

import pytest

from storage import DEFAULT_URL, ENV_VAR, redact, resolve_url, scrub


def test_resolve_url_prefers_argument_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_url(None) == DEFAULT_URL
    monkeypatch.setenv(ENV_VAR, "postgresql://u:pw@db/sweeps")
    assert resolve_url(None) == "postgresql://u:pw@db/sweeps"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://sweeper:hunter2@db:5432/s", "postgresql://sweeper:***@db:5432/s"),
        (
            "mysql+pymysql://root:s3cret-pw@127.0.0.1:3306/t",
            "mysql+pymysql://root:***@127.0.0.1:3306/t",
        ),
        # an unescaped "@" in the password: everything up to the last "@" is masked
        ("postgresql://u:p@ss@db/s", "postgresql://u:***@db/s"),
        ("postgresql://u:p%40ss@db/s", "postgresql://u:***@db/s"),
        ("postgresql://u:@db/s", "postgresql://u:***@db/s"),
        (
            "postgresql://db/s?user=u&password=pw&sslmode=require",
            "postgresql://db/s?user=u&password=***&sslmode=require",
        ),
        ("postgresql://u@db:5432/s", "postgresql://u@db:5432/s"),
        ("sqlite:///sweeps.db", "sqlite:///sweeps.db"),
        ("grpc://proxy:13000", "grpc://proxy:13000"),
    ],
)
def test_redact_masks_the_password_only(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_scrub_masks_raw_and_decoded_password_in_driver_messages() -> None:
    url = "postgresql://u:p%40ss@db/s"
    message = f"could not connect to {url}: password 'p@ss' rejected (raw p%40ss)"
    cleaned = scrub(message, url)
    assert "p@ss" not in cleaned
    assert "p%40ss" not in cleaned
    assert "postgresql://u:***@db/s" in cleaned
