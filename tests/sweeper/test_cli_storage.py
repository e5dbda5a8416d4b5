"""The CLI and storage trouble: one line, exit 2, never the password."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sweeper.cli import app
from tests.servers import old_schema_study
from tests.sweeper.tiny_sweep import sweeper

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "sweeper" / "specs" / "small.yaml"
PASSWORD = "s3cret-pw"

runner = CliRunner()


def test_wrong_password_never_shows_the_password() -> None:
    url = f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:3306/test"
    # Real processes: all they print is captured, loggers and drivers too, not only the CLI's.
    plain = sweeper("create-study", str(DEMO), "--storage", url, cwd=REPO)
    debug = sweeper("--debug", "studies", "--storage", url, cwd=REPO)  # the traceback too
    for result in (plain, debug):
        assert result.returncode == 2, result.stderr
        assert PASSWORD not in result.stdout
        assert PASSWORD not in result.stderr
        assert "mysql+pymysql://root:***@127.0.0.1:3306/test" in result.stderr
        assert "Access denied" in result.stderr
    error_lines = [line for line in plain.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [plain.stderr.splitlines()[-1]]  # one line (after the spec warning)
    assert error_lines[0].startswith("error: cannot open storage mysql+pymysql://root:***@")
    assert "Traceback" in debug.stderr and "Traceback" not in plain.stderr


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["studies", "--storage", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot open storage postgresql://u:***@127.0.0.1:1/x: ")
    assert "Connection refused" in result.stderr
    assert PASSWORD not in result.output


def test_unknown_scheme_is_one_line() -> None:
    result = runner.invoke(app, ["studies", "--storage", "redis://localhost/0"])
    assert result.exit_code == 2
    assert "unknown scheme 'redis'" in result.stderr


def test_old_schema_prints_the_upgrade_command(sqlite_url: str) -> None:
    old_schema_study(sqlite_url)
    result = runner.invoke(app, ["status", "old", "--storage", sqlite_url])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: storage {sqlite_url} has an older Optuna table schema; upgrade it once with: "
        f"optuna storage upgrade --storage '{sqlite_url}'\n"
    )
