"""The fit loop on a tiny model and 64 px synthetic images (CPU, a few seconds each)."""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from trainer_core.config import TrainConfig, apply_overrides
from trainer_core.data import DetectionDataset, make_splits
from trainer_core.data.synthetic import generate
from trainer_core.engine import train_one_epoch
from trainer_core.fit import RunTiming, fit
from trainer_core.loss import DBLoss
from trainer_core.model import build_model
from trainer_core.optim import build_optimizer, build_scheduler, cosine_lr
from trainer_core.precision import resolve_precision
from trainer_core.usage import DeviceUsage


@pytest.fixture(scope="module")
def dataset_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synth"), n_images=12, size=(96, 96), seed=3)


def tiny_config(dataset_json: Path, out: Path, **overrides: object) -> TrainConfig:
    base = TrainConfig.model_validate(
        {
            "model": {"backbone": "mobilenetv3_small_050", "neck_channels": 32},
            "data": {
                "format": "ufo",
                "image_root": str(dataset_json.parent / "images"),
                "annotations": str(dataset_json),
                "val_fraction": 0.25,
            },
            "augment": {"enabled": False},
            "input_size": 64,
            "batch_size": 4,
            "epochs": 2,
            "precision": "fp32",
            "device": "cpu",
            "output_dir": str(out),
        }
    )
    return apply_overrides(base, dict(overrides))


def test_accumulation_matches_the_large_batch(dataset_json: Path, tmp_path: Path) -> None:
    """Batch 4 and batch 2 x accumulation 2 give the same gradient step (fp32).

    The batch repeats two images, so each half-batch has the same statistics as the whole
    (BatchNorm, hard-negative mining and the loss's normalisation all see equal halves).
    """
    cfg = tiny_config(dataset_json, tmp_path)
    two = make_splits(cfg.data).train[:2]
    dataset = DetectionDataset([*two, *two], cfg, train=True)
    precision = resolve_precision("fp32", torch.device("cpu"))
    steps = []
    for batch_size, accum in [(4, 1), (2, 2)]:
        torch.manual_seed(0)
        model = build_model(cfg.model)
        before = [p.detach().clone() for p in model.parameters()]
        # Plain SGD with lr 1: the parameter change is exactly minus the gradient.
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        train_one_epoch(
            model,
            DBLoss(cfg.loss),
            loader,
            optimizer,
            torch.amp.GradScaler("cpu", enabled=False),
            precision,
            torch.device("cpu"),
            grad_accum_steps=accum,
        )
        steps.append([b - p.detach() for b, p in zip(before, model.parameters(), strict=True)])
    for big, small in zip(*steps, strict=True):
        torch.testing.assert_close(big, small, rtol=1e-4, atol=1e-6)


def test_cosine_reaches_eta_min_at_t_max(dataset_json: Path, tmp_path: Path) -> None:
    cfg = tiny_config(dataset_json, tmp_path, **{"scheduler.T_max": 5, "scheduler.eta_min": 1e-5})
    model = build_model(cfg.model)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=3)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: a no-op that keeps torch's step-order check quiet
        scheduler.step()
    assert lrs[0] == pytest.approx(cfg.optimizer.lr)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_t_max_beyond_the_epochs_warns_with_the_final_lr(
    dataset_json: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config(dataset_json, tmp_path, **{"scheduler.T_max": 8, "epochs": 1})
    with caplog.at_level(logging.WARNING, logger="trainer_core.fit"):
        fit(cfg)
    end = 1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi / 8)) / 2
    assert f"lr ends at {end:.3g}" in caplog.text


def test_callback_stops_the_run(dataset_json: Path, tmp_path: Path) -> None:
    seen = []
    result = fit(
        tiny_config(dataset_json, tmp_path, epochs=3),
        on_epoch_end=lambda epoch, record: seen.append(epoch) or True,
    )
    assert seen == [1]
    assert result.status == "stopped"
    assert result.epochs_run == 1
    assert result.gap_metrics is not None  # a stopped (pruned) run is still scored


def _resume_vs_straight(dataset_json: Path, tmp_path: Path) -> tuple:
    """A run planned for 4 epochs, and the same run cut after 2 and resumed."""
    cosine = {"scheduler.T_max": 4, "augment.enabled": True}
    straight = fit(tiny_config(dataset_json, tmp_path / "a", epochs=4, **cosine))
    fit(tiny_config(dataset_json, tmp_path / "b", epochs=2, **cosine))
    resumed = fit(tiny_config(dataset_json, tmp_path / "b", epochs=4, **cosine), resume=True)
    a = torch.load(straight.last_checkpoint, weights_only=True)["model"]
    b = torch.load(resumed.last_checkpoint, weights_only=True)["model"]
    return straight, resumed, a, b


def test_resume_equals_an_uninterrupted_run_bitwise_on_one_thread(
    dataset_json: Path, tmp_path: Path
) -> None:
    """Deterministic settings (one intra-op thread): resume repeats the run bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight, resumed, a, b = _resume_vs_straight(dataset_json, tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in straight.history]
    assert [r.hmean for r in resumed.history] == [r.hmean for r in straight.history]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resume_equals_an_uninterrupted_run_within_float_tolerance(
    dataset_json: Path, tmp_path: Path
) -> None:
    """Any thread count: multi-threaded sums may differ in the last bits, nothing more."""
    straight, resumed, a, b = _resume_vs_straight(dataset_json, tmp_path)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    assert [r.lr for r in resumed.history] == pytest.approx([r.lr for r in straight.history])
    assert [r.train_loss for r in resumed.history] == pytest.approx(
        [r.train_loss for r in straight.history], rel=1e-4
    )
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=1e-4, atol=1e-5)


def _end_lrs(checkpoint: Path) -> list[float]:
    """Each parameter group's lr after the last epoch, over its peak lr."""
    groups = torch.load(checkpoint, weights_only=True)["optimizer"]["param_groups"]
    return [g["lr"] / g["initial_lr"] for g in groups]


@pytest.mark.parametrize("step_per", ["epoch", "step"])
@pytest.mark.parametrize("accum", [1, 4])
def test_lr_reaches_eta_min_at_t_max_with_accumulation(
    dataset_json: Path, tmp_path: Path, step_per: str, accum: int
) -> None:
    """9 training images, batch 1: 9 batches but 9 / accum optimizer steps an epoch."""
    lr, eta_min = 1e-3, 1e-6
    cfg = tiny_config(
        dataset_json,
        tmp_path,
        batch_size=1,
        grad_accum_steps=accum,
        epochs=2,
        **{
            "optimizer.lr": lr,
            "scheduler.T_max": 2,
            "scheduler.eta_min": eta_min,
            "scheduler.step_per": step_per,
        },
    )
    result = fit(cfg)
    assert result.status == "completed"
    ends = _end_lrs(result.last_checkpoint)
    assert ends == pytest.approx([eta_min / lr] * len(ends), rel=1e-6)


def test_lr_reaches_eta_min_after_an_out_of_memory_retry(
    dataset_json: Path, tmp_path: Path
) -> None:
    """The retry resumes with half the batch and twice the accumulation (sweeper.objective):
    the cosine continues where it was and still ends at eta_min at T_max."""
    lr, eta_min = 1e-3, 1e-6
    schedule = {
        "optimizer.lr": lr,
        "scheduler.T_max": 4,
        "scheduler.eta_min": eta_min,
        "scheduler.step_per": "step",
    }
    first = tiny_config(
        dataset_json, tmp_path, batch_size=2, grad_accum_steps=2, epochs=4, **schedule
    )
    cut = fit(first, on_epoch_end=lambda epoch, record: epoch == 2)
    assert cut.status == "stopped" and cut.epochs_run == 2
    retry = apply_overrides(first, {"batch_size": 1, "grad_accum_steps": 4})
    resumed = fit(retry, resume=True)
    assert resumed.status == "completed"
    ends = _end_lrs(resumed.last_checkpoint)
    assert ends == pytest.approx([eta_min / lr] * len(ends), rel=1e-6)
    # Each epoch started where an uninterrupted cosine would be.
    expected = [cosine_lr(epoch - 1, lr, eta_min, 4) for epoch in range(1, 5)]
    assert [r.lr for r in resumed.history] == pytest.approx(expected)


def test_early_stopping(dataset_json: Path, tmp_path: Path) -> None:
    # An lr this small changes nothing measurable: val H-mean cannot gain 0.5 twice.
    cfg = tiny_config(
        dataset_json,
        tmp_path,
        epochs=6,
        **{"optimizer.lr": 1e-9, "early_stopping.patience": 2, "early_stopping.min_delta": 0.5},
    )
    result = fit(cfg)
    assert result.status == "early_stopped"
    assert result.epochs_run == 3
    assert result.best_epoch == 1


def test_nan_loss_fails_the_run_without_raising(
    dataset_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forward = DBLoss.forward

    def nan_loss(self: DBLoss, out: dict, batch: dict) -> tuple:
        loss, parts = forward(self, out, batch)
        return loss * float("nan"), parts

    monkeypatch.setattr(DBLoss, "forward", nan_loss)
    result = fit(tiny_config(dataset_json, tmp_path, nonfinite_patience=2))
    assert result.failed
    assert "non-finite loss" in result.reason
    assert result.gap_metrics is None


@pytest.mark.parametrize("holdout_fraction, split", [(0.25, "holdout"), (0.0, "train")])
def test_gap_split_metrics(
    dataset_json: Path, tmp_path: Path, holdout_fraction: float, split: str
) -> None:
    cfg = tiny_config(
        dataset_json, tmp_path, epochs=1, **{"data.holdout_fraction": holdout_fraction}
    )
    result = fit(cfg)
    assert result.status == "completed"
    assert result.gap_split == split
    assert result.gap_metrics is not None
    assert 0.0 <= result.gap_metrics.hmean <= 1.0
    assert result.gap is not None
    assert result.best_checkpoint.exists() and result.last_checkpoint.exists()
    assert result.peak_memory_mb > 0


def test_time_split_adds_up_over_the_epochs_and_the_run(dataset_json: Path, tmp_path: Path) -> None:
    """Training, evaluation and overhead add up: per epoch to its wall time, over the epochs
    to the run's training, and the gap split's pass is evaluation too."""
    result = fit(tiny_config(dataset_json, tmp_path, epochs=2, eval_every=2))
    timing = result.timing
    assert timing is not None
    assert timing.training_s > 0 and timing.evaluation_s > 0 and timing.overhead_s > 0
    assert timing.wall_s == pytest.approx(
        timing.training_s + timing.evaluation_s + timing.overhead_s
    )
    first, second = result.history
    assert first.eval_seconds == 0.0  # epoch 1 was not validated
    assert second.eval_seconds is not None and second.eval_seconds > 0
    assert all(r.overhead_seconds is not None and r.overhead_seconds >= 0 for r in result.history)
    assert sum(r.seconds for r in result.history) == pytest.approx(timing.training_s)
    # Validation of epoch 2, then the gap split: the run's evaluation is more than the epochs'.
    assert second.eval_seconds < timing.evaluation_s
    walls = [r.wall_seconds for r in result.history]
    assert sum(w for w in walls if w is not None) < timing.wall_s  # set-up is the run's alone
    stored = torch.load(result.last_checkpoint, weights_only=True)["history"]
    assert stored[-1]["eval_seconds"] == second.eval_seconds


def test_an_interrupting_callback_leaves_the_time_spent_with_the_caller(
    dataset_json: Path, tmp_path: Path
) -> None:
    """A callback that raises ends ``fit`` without a result; the ``timing`` passed in has
    the training that happened before it."""
    timing = RunTiming()

    def interrupt(index: int, total: int, loss: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(dataset_json, tmp_path), on_step=interrupt, timing=timing)
    assert timing.training_s > 0 and timing.evaluation_s == 0.0


def test_on_the_cpu_the_device_figures_say_cpu_and_stay_unknown(
    dataset_json: Path, tmp_path: Path
) -> None:
    usage = fit(tiny_config(dataset_json, tmp_path, epochs=1)).usage
    assert usage == DeviceUsage("cpu", usage.name, "cpu")
    assert usage.name.startswith("cpu")
    assert usage.utilization_pct is None and usage.peak_memory_mb is None
