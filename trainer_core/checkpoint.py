"""Checkpoint files: atomic writes, safe loads, and the RNG states a resume restores.

What a checkpoint holds (weights, optimizer, scaler, RNG, history) is defined in one place,
:class:`trainer_core.run_state.RunState`; the lr schedule is placed by the epoch reached
(see ``build_scheduler``).

Everything is stored as tensors, numbers, strings, lists and dicts so that loading works
with ``torch.load(..., weights_only=True)`` (no pickled objects from a file we may not trust).
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_checkpoint", "restore_rng", "rng_state", "save_checkpoint"]


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, weights_only-safe."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write never leaves a truncated ``last.pt``.

    The checkpoint goes to ``path.tmp`` and is renamed over ``path`` once whole. A write that
    fails (disk full, read-only file system) removes the partial ``.tmp`` and raises an
    ``OSError`` whose ``filename`` is ``path``; the previous ``path`` is left as it was. The
    folder must exist (:func:`~trainer_core.fit.fit` makes it when the run starts): one
    removed mid-run, with the study it belonged to, is not made again.

    Raises:
        OSError: the file system refused the write, e.g. ``errno.ENOSPC`` for a full disk,
            ``errno.ENOENT`` for a folder that is not there.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        cause = _os_error_in(e)
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from e


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError ``e`` is, or that torch's zip writer turned into its RuntimeError.

    A write into a Python file that fails mid-way (a disk that fills up) surfaces from
    ``torch.save`` as ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``,
    the file's ``OSError`` only as its context.
    """
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        if not isinstance(seen, RuntimeError):
            return None
        seen = seen.__cause__ or seen.__context__
    return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load on the CPU with ``weights_only=True``."""
    return torch.load(path, map_location="cpu", weights_only=True)
