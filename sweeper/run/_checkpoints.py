"""A trial's checkpoints beyond the common path: whether a retry may resume one, how a
promoted trial is seeded, and what a file-system error there means. (Where they live is
:mod:`sweeper.paths`.)"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from sweeper.attrs import PROMOTE_CHECKPOINT_ATTR, PROMOTED_FROM_ATTR
from sweeper.paths import recorded_folder
from trainer_core.config import TrainConfig

# Fields a retry may legitimately change, by section ("" the top level): the out-of-memory
# retry halves the batch and doubles the accumulation; another node has its own device,
# output folder and data mount (data and weight files are found under it).
_RESUME_IGNORES = {
    "": ("batch_size", "grad_accum_steps", "output_dir", "device", "num_workers"),
    "data": ("image_root", "annotations"),
    "model": ("weights", "init_checkpoint"),
}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in config.items() if k not in _RESUME_IGNORES[""]}
    for section, ignored in _RESUME_IGNORES.items():
        if section and isinstance(kept.get(section), dict):
            kept[section] = {k: v for k, v in kept[section].items() if k not in ignored}
    return kept


def resume_mismatch(cfg: TrainConfig, state: dict[str, Any]) -> str | None:
    """Why checkpoint ``state`` may not be resumed by a trial configured as ``cfg``, or None.

    Only the checkpoint's own trial may resume it: a config that differs in anything but
    batch size, gradient accumulation, device, output folder or data mount is another run.
    """
    stored = state.get("config")
    if not isinstance(stored, str):
        return "the checkpoint records no config"
    old, new = _comparable(json.loads(stored)), _comparable(json.loads(cfg.model_dump_json()))
    if old == new:
        return None
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return f"its config differs in {', '.join(differ)}"


FILE_SYSTEM_WIDE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
"""Write errors of the file system, not of one file: a full disk or quota, a read-only
mount, a file-size limit. Every next trial writing there would fail alike."""


def os_error_reason(e: OSError) -> str:
    """A file-system error as a trial's fail reason: ``disk full at PATH`` and the like."""
    where = f" at {e.filename}" if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full{where}"
    if e.errno == errno.EROFS:
        return f"read-only file system{where}"
    return f"{e.strerror or type(e).__name__}{where}"


def artifacts_problem(artifacts: Path) -> str | None:
    """Why checkpoints cannot be written under ``artifacts`` (None: a probe file could)."""
    probe = Path(artifacts) / "checkpoints" / f".probe-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        with contextlib.suppress(OSError):
            probe.unlink()
        return f"artifacts directory {artifacts} is unusable: {os_error_reason(e)}"
    return None


def seed_promoted_checkpoint(attrs: dict[str, Any], artifacts: Path, out_dir: Path) -> bool:
    """Copy a promoted trial's source checkpoint into its own folder; True if copied.

    Nothing is copied when ``out_dir`` already holds a ``last.pt`` (a retry of the promoted
    trial resumes its own progress).

    Raises:
        FileNotFoundError: the source's ``last.pt`` is not under this node's artifacts.
        StudyError: the recorded source folder lies outside the artifacts directory.
    """
    if (out_dir / "last.pt").exists():
        return False
    source = recorded_folder(attrs[PROMOTE_CHECKPOINT_ATTR], artifacts)
    if not (source / "last.pt").is_file():
        raise FileNotFoundError(
            f"{source / 'last.pt'}: the checkpoint of trial {attrs[PROMOTED_FROM_ATTR]} is not "
            "in this worker's --artifacts"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("best.pt", "last.pt"):  # last.pt last: its presence means "resume"
        if (source / name).is_file():
            tmp = out_dir / f"{name}.tmp"
            shutil.copyfile(source / name, tmp)
            os.replace(tmp, out_dir / name)
    return True
