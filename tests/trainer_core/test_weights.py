"""Starting points: timm pretrained (from a local file), backbone files, whole-DBNet checkpoints.

Nothing here downloads: timm's pretrained path is pointed at a local file with its
documented ``pretrained_cfg_overlay=dict(file=...)``, and the hub is switched to offline.
"""

from __future__ import annotations

import logging
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file

from trainer_core.config import ModelConfig, TrainConfig, apply_overrides
from trainer_core.data.synthetic import generate
from trainer_core.errors import ConfigError
from trainer_core.fit import fit
from trainer_core.model import build_model

BACKBONE = "mobilenetv3_small_050"


def _model_cfg(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"backbone": BACKBONE, "neck_channels": 32, **fields})


@pytest.fixture(scope="module")
def classifier() -> dict[str, torch.Tensor]:
    """A timm classification model's state dict, as timm's own pretrained files hold it."""
    torch.manual_seed(7)
    return timm.create_model(BACKBONE, pretrained=False).state_dict()


def _assert_backbone_is(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = model.backbone.state_dict()
    shared = [k for k in own if k in state]
    assert len(shared) == len(own)
    for k in shared:
        torch.testing.assert_close(own[k], state[k])


def test_pretrained_through_timm_from_a_local_file(
    classifier: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    path = tmp_path / "model.safetensors"
    save_file(classifier, path)
    model = build_model(_model_cfg(pretrained=True), pretrained_overlay={"file": str(path)})
    _assert_backbone_is(model, classifier)
    fresh = build_model(_model_cfg())
    assert not torch.allclose(
        fresh.backbone.state_dict()["conv_stem.weight"], classifier["conv_stem.weight"]
    )


def test_pretrained_offline_and_not_cached_names_both_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HF_HUB_OFFLINE=1 with an empty cache, as huggingface_hub reads them at call time.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ConfigError) as info:
        build_model(_model_cfg(pretrained=True))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("model.pretrained:")
    assert repr(BACKBONE) in text and "cache" in text and "model.weights" in text


def test_unknown_backbone_is_a_backbone_error_even_when_pretrained() -> None:
    with pytest.raises(ConfigError, match=r"model\.backbone: cannot build 'no_such_net'"):
        build_model(_model_cfg(backbone="no_such_net", pretrained=True))


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model"])
@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_torch_state_dicts_bare_or_wrapped(
    classifier: dict[str, torch.Tensor], tmp_path: Path, wrapper: str | None, suffix: str
) -> None:
    path = tmp_path / f"backbone{suffix}"
    torch.save(classifier if wrapper is None else {wrapper: classifier, "epoch": 3}, path)
    _assert_backbone_is(build_model(_model_cfg(weights=path)), classifier)


def test_safetensors_weights_report_the_tensors_loaded_and_missing(
    classifier: dict[str, torch.Tensor], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    partial = {k: v for k, v in classifier.items() if not k.startswith("blocks.5")}
    path = tmp_path / "partial.safetensors"
    save_file(partial, path)
    with caplog.at_level(logging.INFO, logger="trainer_core.weights"):
        model = build_model(_model_cfg(weights=path))
    own = model.backbone.state_dict()
    n_missing = sum(k.startswith("blocks.5") for k in own)
    assert n_missing > 0
    line = next(r.getMessage() for r in caplog.records if "model.weights" in r.getMessage())
    assert f"loaded {len(own) - n_missing} of {len(own)} backbone tensors" in line
    assert f"missing {n_missing}: blocks.5" in line
    torch.testing.assert_close(own["conv_stem.weight"], classifier["conv_stem.weight"])


def test_a_file_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.layer0.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ConfigError, match=r"model.weights: no tensor in .*other.pth matches"):
        build_model(_model_cfg(weights=path))


def test_unreadable_and_pickled_files_are_config_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"model\.weights: cannot load"):
        build_model(_model_cfg(weights=garbage))
    with pytest.raises(ConfigError, match="no such file"):
        build_model(_model_cfg(weights=tmp_path / "absent.safetensors"))


def test_model_section_validates_where_it_enters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model\.weights"):
        TrainConfig.model_validate({"model": {"weights": "backbone.txt"}})
    with pytest.raises(ValueError, match="init_checkpoint"):
        TrainConfig.model_validate({"model": {"init_checkpoint": "dbnet.safetensors"}})
    with pytest.raises(ValueError, match="pretrained and init_checkpoint are both"):
        TrainConfig.model_validate({"model": {"pretrained": True, "init_checkpoint": "b.pt"}})
    cfg = _model_cfg(init_checkpoint="runs/best.pt").with_root(tmp_path)
    assert cfg.init_checkpoint == tmp_path / "runs/best.pt"


# ---- whole-DBNet checkpoints written by fit -------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path]:
    """A config and the directory where a one-epoch run wrote best.pt and last.pt."""
    root = tmp_path_factory.mktemp("init")
    ann = generate(root / "data", n_images=8, size=(96, 96), seed=3)
    cfg = TrainConfig.model_validate(
        {
            "model": {"backbone": BACKBONE, "neck_channels": 32},
            "data": {
                "format": "ufo",
                "image_root": str(ann.parent / "images"),
                "annotations": str(ann),
                "val_fraction": 0.25,
            },
            "augment": {"enabled": False},
            "postprocess": {"box_thresh": 0.0},  # any detection makes best.pt on epoch 1
            "input_size": 64,
            "batch_size": 4,
            "epochs": 1,
            "precision": "fp32",
            "device": "cpu",
            "output_dir": str(root / "run"),
        }
    )
    result = fit(cfg)
    assert result.best_checkpoint.exists() and result.last_checkpoint.exists()
    return cfg, root / "run"


@pytest.mark.parametrize("name", ["best.pt", "last.pt"])
def test_init_checkpoint_loads_the_whole_dbnet(
    trained: tuple[TrainConfig, Path], name: str
) -> None:
    cfg, run = trained
    saved = torch.load(run / name, weights_only=True)["model"]
    model = build_model(cfg.model.model_copy(update={"init_checkpoint": run / name}))
    own = model.state_dict()
    assert own.keys() == saved.keys()
    for k in ("neck.lateral.0.weight", "prob_head.body.4.weight", "backbone.conv_stem.weight"):
        torch.testing.assert_close(own[k], saved[k])


def test_fine_tuning_starts_a_fresh_optimizer_and_schedule(
    trained: tuple[TrainConfig, Path], tmp_path: Path
) -> None:
    cfg, run = trained
    tune = apply_overrides(
        cfg,
        {
            "model.init_checkpoint": str(run / "last.pt"),
            "optimizer.lr": 1e-4,
            "epochs": 2,
            "output_dir": str(tmp_path / "tune"),
        },
    )
    result = fit(tune)
    # Epoch 1 of the fine-tune, at the full lr: not the checkpoint's epoch 2 of its schedule.
    assert [r.epoch for r in result.history] == [1, 2]
    assert result.history[0].lr == pytest.approx(1e-4)


def test_init_checkpoint_of_another_backbone_names_tensor_and_both_backbones(
    trained: tuple[TrainConfig, Path],
) -> None:
    _, run = trained
    other = ModelConfig(backbone="resnet10t", neck_channels=32, init_checkpoint=run / "best.pt")
    with pytest.raises(ConfigError) as info:
        build_model(other)
    text = str(info.value)
    assert text.startswith("model.init_checkpoint:")
    assert "tensor backbone." in text
    assert f"checkpoint backbone {BACKBONE}" in text and "config backbone 'resnet10t'" in text


def test_init_checkpoint_of_another_width_names_the_shape(
    trained: tuple[TrainConfig, Path],
) -> None:
    _, run = trained
    wider = _model_cfg(neck_channels=64, init_checkpoint=run / "best.pt")
    with pytest.raises(ConfigError, match=r"tensor neck.lateral.0.weight has shape \[32,"):
        build_model(wider)


def test_a_backbone_file_is_not_an_init_checkpoint(
    classifier: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    path = tmp_path / "backbone.pt"
    torch.save(classifier, path)
    with pytest.raises(ConfigError, match=r"no .model. entry.*use model\.weights"):
        build_model(_model_cfg(init_checkpoint=path))
