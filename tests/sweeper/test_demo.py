"""The demo's starting point: made once, reused, never taken half-made."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from sweeper.define import load_spec, parse_spec
from sweeper.demo import bundled_spec, pretrained_checkpoint
from tests.sweeper.tiny_sweep import tiny_spec


def test_the_demo_spec_fine_tunes_the_starting_point_the_demo_makes() -> None:
    spec = load_spec(bundled_spec("demo.yaml"))
    assert spec.base.model.init_checkpoint is not None
    assert not spec.base.model.init_checkpoint.is_absolute()  # under the demo directory


def test_a_finished_starting_point_is_reused(tmp_path: Path) -> None:
    spec_data = tiny_spec("demo", 1)
    spec_data["base"]["model"]["init_checkpoint"] = "pretrained/best.pt"
    spec = parse_spec(spec_data)
    made = tmp_path / "pretrained" / "best.pt"
    made.parent.mkdir()
    made.write_bytes(b"a checkpoint")
    console = Console(record=True, width=200)
    assert pretrained_checkpoint(tmp_path, spec, console) == made
    assert "reused" in console.export_text()
    assert not (tmp_path / "pretraining").exists()  # nothing was trained
