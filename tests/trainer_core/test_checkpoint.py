"""RunState's checkpoints: what it writes reads back equal, under the keys readers use."""

from __future__ import annotations

import contextlib
import errno
import random
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainer_core.checkpoint import load_checkpoint
from trainer_core.errors import ConfigError
from trainer_core.metrics import DetectionMetrics
from trainer_core.run_state import EpochRecord, RunState, resume_problem


def _run_state(seed: int) -> RunState:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return RunState(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), '{"seed": 1}')


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_last_checkpoint_reads_back_equal(tmp_path: Path) -> None:
    run = _run_state(0)
    run.model(torch.ones(4, 3)).sum().backward()
    run.optimizer.step()  # momentum buffers: optimizer state worth restoring
    best = DetectionMetrics(0.5, 0.25, 1 / 3, n_gt=8, n_pred=4, n_match=2)
    run.end_epoch(EpochRecord(1, 0.9, 0.1, 1.0, 4.0), None, min_delta=0.0)
    run.end_epoch(EpochRecord(2, 0.8, 0.1, 1.0, 4.0, 0.5, 0.25, 1 / 3), best, min_delta=0.0)
    run.nonfinite_streak = 2
    run.save(tmp_path / "last.pt")
    after_save = _draws()

    back = _run_state(1)
    back.load(tmp_path / "last.pt")
    assert _draws() == after_save  # the RNGs continue where the run left them
    for field in ("epoch", "history", "best_hmean", "best_epoch", "best", "since_best"):
        assert getattr(back, field) == getattr(run, field), field
    assert back.nonfinite_streak == 2
    for a, b in zip(run.model.parameters(), back.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    momentum = [s["momentum_buffer"] for s in back.optimizer.state_dict()["state"].values()]
    expected = [s["momentum_buffer"] for s in run.optimizer.state_dict()["state"].values()]
    for a, b in zip(expected, momentum, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoint_keys_are_those_existing_checkpoints_have(tmp_path: Path) -> None:
    """Checkpoints written before RunState must still resume, and sweeper reads these keys."""
    run = _run_state(0)
    run.end_epoch(EpochRecord(1, 0.9, 0.1, 1.0, 4.0), None, min_delta=0.0)
    run.save(tmp_path / "last.pt")
    run.save_best(tmp_path / "best.pt")
    last = load_checkpoint(tmp_path / "last.pt")
    assert set(last) == {
        "model",
        "optimizer",
        "scaler",
        "rng",
        "epoch",
        "history",
        "best_hmean",
        "best_epoch",
        "best",
        "since_best",
        "nonfinite_streak",
        "config",
    }
    assert last["history"] == [vars(EpochRecord(1, 0.9, 0.1, 1.0, 4.0))]
    best = load_checkpoint(tmp_path / "best.pt")
    assert set(best) == {"model", "epoch", "config"}
    assert (best["epoch"], best["config"]) == (1, '{"seed": 1}')


def test_a_weights_only_checkpoint_is_refused_as_a_resume_in_one_line(tmp_path: Path) -> None:
    run = _run_state(0)
    run.save(tmp_path / "last.pt")
    run.save_best(tmp_path / "best.pt")
    assert resume_problem(load_checkpoint(tmp_path / "last.pt")) is None
    why = resume_problem(load_checkpoint(tmp_path / "best.pt"))
    assert why is not None and "weights only" in why and "model.init_checkpoint" in why
    # A best.pt copied over last.pt by hand: a clear error naming the file, not a KeyError.
    with pytest.raises(ConfigError, match=r"cannot resume from .*best\.pt: it holds weights only"):
        _run_state(1).load(tmp_path / "best.pt")


def test_history_written_before_the_time_split_reads_back_untimed(tmp_path: Path) -> None:
    """A last.pt whose records lack eval and overhead seconds resumes; they read back None."""
    run = _run_state(0)
    run.end_epoch(
        EpochRecord(1, 0.9, 0.1, 1.0, 4.0, eval_seconds=0.5, overhead_seconds=0.1), None, 0.0
    )
    run.save(tmp_path / "last.pt")
    state = load_checkpoint(tmp_path / "last.pt")
    for record in state["history"]:
        del record["eval_seconds"], record["overhead_seconds"]
    torch.save(state, tmp_path / "old.pt")
    back = _run_state(1)
    back.load(tmp_path / "old.pt")
    assert back.history == [EpochRecord(1, 0.9, 0.1, 1.0, 4.0)]
    assert back.history[0].wall_seconds is None
    assert run.history[0].wall_seconds == pytest.approx(1.6)


def _big_run_state() -> RunState:
    """Weights and momentum of about 8 MB: more than the small file systems below take."""
    model = nn.Linear(1024, 1024)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(2, 1024)).sum().backward()
    optimizer.step()
    return RunState(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), "{}")


def _fails_whole(folder: Path, expected_errno: int) -> None:
    """A last.pt that fits, then one that does not: an OSError naming last.pt, no partial
    file, the earlier last.pt intact."""
    last = folder / "trial-0" / "last.pt"
    last.parent.mkdir()
    _run_state(0).save(last)
    with pytest.raises(OSError) as info:
        _big_run_state().save(last)
    assert (info.value.errno, info.value.filename) == (expected_errno, str(last))
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]
    assert load_checkpoint(last)["model"]["weight"].shape == (2, 3)


def test_a_disk_that_fills_mid_write_is_enospc_naming_the_checkpoint(small_tmpfs: Path) -> None:
    """torch's zip writer turns the file's ENOSPC into 'RuntimeError: ... unexpected pos';
    the caller gets the OSError a full disk is, so a trial fails with 'disk full at PATH'."""
    _fails_whole(small_tmpfs, errno.ENOSPC)


@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Files written meanwhile stop growing at ``limit`` bytes (EFBIG), like a disk that
    fills mid-write, on machines where no small file system can be mounted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the signal kills us
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_file_that_stops_growing_mid_write_is_an_os_error_naming_the_checkpoint(
    tmp_path: Path,
) -> None:
    with _file_size_limit(1 << 20):
        _fails_whole(tmp_path, errno.EFBIG)


def test_a_folder_removed_mid_run_is_not_made_again(tmp_path: Path) -> None:
    """A study deleted under a running trial takes its checkpoint folder along; the next
    epoch's checkpoint must not bring it back."""
    last = tmp_path / "checkpoints" / "study-0123" / "trial-0" / "last.pt"
    with pytest.raises(FileNotFoundError) as info:
        _run_state(0).save(last)
    assert info.value.filename == str(last)
    assert not (tmp_path / "checkpoints").exists()
