"""``sweeper train``: a tiny run end to end, and bad configs rejected in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import yaml
from rich.console import Console
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.run import run_training
from tests.sweeper.tiny_sweep import make_data, sweeper, tiny_spec

runner = CliRunner()


def _config(tmp_path: Path, **changes: object) -> Path:
    base = tiny_spec("unused", 1, epochs=2)["base"]
    base.update(changes)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_train_writes_both_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_data(tmp_path)
    monkeypatch.chdir(tmp_path)  # the config's data paths are relative
    result = runner.invoke(app, ["train", str(_config(tmp_path)), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "training summary" in result.stdout
    assert (tmp_path / "run" / "best.pt").exists()
    assert (tmp_path / "run" / "last.pt").exists()


def test_bad_field_exits_2_naming_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(_config(tmp_path, batch_size=0))])
    assert result.exit_code == 2
    assert "batch_size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unknown_key_and_bad_override_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(_config(tmp_path, batch_sise=4))])
    assert result.exit_code == 2 and "batch_sise" in result.stderr
    result = runner.invoke(app, ["train", str(_config(tmp_path)), "--set", "optimizer.lr=-1"])
    assert result.exit_code == 2 and "optimizer.lr" in result.stderr
    result = runner.invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "missing.yaml" in result.stderr


def test_a_config_that_is_not_utf8_exits_2_naming_the_file_and_the_byte(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_bytes(config.read_bytes() + b"# r\xe9glage\n")
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {config}: not UTF-8: byte 0xe9 at position ")


def test_pretrained_offline_without_cache_exits_2_naming_both_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_data(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    base = tiny_spec("unused", 1)["base"]
    config = _config(tmp_path, model={**base["model"], "pretrained": True})
    # A process of its own: the Hugging Face hub reads HF_HUB_OFFLINE once, at its import.
    result = sweeper("train", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "model.pretrained" in line and "mobilenetv3_small_050" in line
    assert "cache" in line and "model.weights" in line


def test_a_trained_best_pt_fine_tunes_with_no_editing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = str(_config(tmp_path))
    first = runner.invoke(app, ["train", config, "--set", "epochs=1", "--out", "first"])
    assert first.exit_code == 0, first.output
    tuned = runner.invoke(
        app,
        [
            "train",
            config,
            "--set",
            "model.init_checkpoint=first/best.pt",
            "--set",
            "epochs=1",
            "--out",
            "tuned",
        ],
    )
    assert tuned.exit_code == 0, tuned.output
    assert (tmp_path / "tuned" / "best.pt").exists()


def test_train_reports_the_backbone_tensors_a_weights_file_gave(tmp_path: Path) -> None:
    make_data(tmp_path)
    weights = tmp_path / "backbone.pth"
    torch.save({"state_dict": timm.create_model("mobilenetv3_small_050").state_dict()}, weights)
    base = tiny_spec("unused", 1)["base"]
    config = _config(tmp_path, model={**base["model"], "weights": str(weights)}, epochs=1)
    config.write_text(config.read_text().replace("tiny-data/", f"{tmp_path}/tiny-data/"))
    console = Console(record=True, width=200)
    run_training(config, out=tmp_path / "run", console=console)
    text = console.export_text()
    assert "model.weights: loaded " in text and " backbone tensors from " in text
