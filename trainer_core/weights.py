"""Where a DBNet starts: timm's pretrained backbone, a local backbone file, or a whole DBNet.

Three starting points, one of them per run (``ModelConfig`` enforces that):

- ``model.pretrained``: timm's own weights for the backbone, through timm's hub download and
  the local Hugging Face hub cache (offline when the cache has them);
- ``model.weights``: a local backbone file, ``.safetensors`` or a torch state dict
  (``.pth``/``.pt``/``.bin``, bare or wrapped in ``state_dict``/``model``);
- ``model.init_checkpoint``: a whole DBNet (backbone, neck, heads) from a checkpoint this
  project wrote (``best.pt``/``last.pt``), loaded strictly.

Every torch file is read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from trainer_core.errors import ConfigError

__all__ = [
    "BackboneLoad",
    "checkpoint_backbone",
    "create_backbone",
    "load_backbone_file",
    "load_init_checkpoint",
]

log = logging.getLogger(__name__)

OUT_INDICES = (-4, -3, -2, -1)
"""The backbone's last four feature levels (strides 4, 8, 16, 32) feed the FPN."""

_WRAPPERS = ("state_dict", "model")
"""Keys a training script wraps its weights in (timm's train.py, this project's checkpoints)."""


@dataclass(frozen=True)
class BackboneLoad:
    """What a backbone file gave: tensors loaded, the backbone's tensors it lacked."""

    loaded: int
    total: int
    missing: list[str]
    skipped: list[str]
    """Tensors in the file whose name matched but whose shape did not."""

    def describe(self, path: Path) -> str:
        text = f"model.weights: loaded {self.loaded} of {self.total} backbone tensors from {path}"
        if self.missing:
            text += f"; missing {len(self.missing)}: {_first(self.missing)}"
        if self.skipped:
            text += f"; shape differs, skipped {len(self.skipped)}: {_first(self.skipped)}"
        return text


def create_backbone(
    name: str, pretrained: bool = False, pretrained_overlay: dict[str, Any] | None = None
) -> nn.Module:
    """``timm.create_model(name, features_only=True)``, with timm's pretrained weights if asked.

    Args:
        name: a timm model name.
        pretrained: load timm's weights (hub download, or the local hub cache when offline).
        pretrained_overlay: passed to timm as ``pretrained_cfg_overlay``; timm's documented
            way to point the pretrained weights at a local file is ``{"file": PATH}``.

    Raises:
        ConfigError: an unknown model, one without ``features_only``, or pretrained weights
            that are neither in the cache nor downloadable (naming both ways out).
    """
    kwargs: dict[str, Any] = {"features_only": True, "out_indices": OUT_INDICES}
    try:
        return timm.create_model(
            name, pretrained=pretrained, pretrained_cfg_overlay=pretrained_overlay, **kwargs
        )
    except (RuntimeError, ValueError, OSError) as e:
        if not pretrained:
            raise ConfigError(f"model.backbone: cannot build {name!r} ({_short(e)})") from e
        try:  # is the architecture the problem, or its weights?
            timm.create_model(name, pretrained=False, **kwargs)
        except (RuntimeError, ValueError) as arch:
            raise ConfigError(f"model.backbone: cannot build {name!r} ({_short(arch)})") from e
        raise ConfigError(_pretrained_unavailable(name, e)) from e


def _pretrained_unavailable(name: str, error: BaseException) -> str:
    """The one line for ``model.pretrained`` weights timm could not get."""
    if isinstance(error, RuntimeError) and "No pretrained weights" in str(error):
        return (
            f"model.pretrained: timm has no pretrained weights for backbone {name!r}; "
            "set model.weights to a local file, or model.pretrained: false"
        )
    from huggingface_hub import constants

    return (
        f"model.pretrained: timm's weights for backbone {name!r} are not in the local hub "
        f"cache ({constants.HF_HUB_CACHE}) and could not be downloaded ({_short(error)}); "
        f'populate the cache (on a machine online: python -c "import timm; '
        f"timm.create_model('{name}', pretrained=True)\", then copy the cache or set HF_HOME), "
        "or set model.weights to a local .safetensors/.pth file"
    )


def read_state_dict(path: Path, field: str) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch state dict (bare or wrapped)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ConfigError(f"{field}: {path}: no such file") from e
    except Exception as e:  # corrupt, truncated, pickled objects weights_only refuses
        raise ConfigError(f"{field}: cannot load {path} ({_short(e)})") from e
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{field}: {path} holds no state dict (name -> tensor)")
    # DataParallel / DistributedDataParallel prefix every name.
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone_file(backbone: nn.Module, path: Path) -> BackboneLoad:
    """Load a local backbone file into ``backbone``; tensors it lacks keep their init.

    Names are matched as timm names them (the classifier a file carries is ignored).

    Raises:
        ConfigError: unreadable, or no tensor of the file fits the backbone.
    """
    state = read_state_dict(path, "model.weights")
    own = backbone.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in state if k in own and k not in fits)
    if not fits:
        arch = getattr(backbone, "pretrained_cfg", {}).get("architecture", type(backbone).__name__)
        raise ConfigError(
            f"model.weights: no tensor in {path} matches backbone {arch!r} "
            f"({len(state)} tensors in the file, e.g. {_first(sorted(state))}; "
            f"the backbone's are named like {_first(list(own))})"
        )
    backbone.load_state_dict(fits, strict=False)
    report = BackboneLoad(
        loaded=len(fits),
        total=len(own),
        missing=[k for k in own if k not in fits],
        skipped=skipped,
    )
    log.info("%s", report.describe(path))
    return report


def checkpoint_backbone(state: dict[str, Any]) -> str | None:
    """The backbone a checkpoint of this project was trained with, if it records its config."""
    config = state.get("config")
    if not isinstance(config, str):
        return None
    try:
        return json.loads(config)["model"]["backbone"]
    except (ValueError, KeyError, TypeError):
        return None


def load_init_checkpoint(model: nn.Module, path: Path, backbone: str) -> None:
    """Load a whole DBNet from ``best.pt``/``last.pt``, strictly; optimizer state is ignored.

    Raises:
        ConfigError: unreadable, not a checkpoint of this project, or any tensor missing,
            unexpected or of another shape (naming the first and both backbones).
    """
    field = "model.init_checkpoint"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ConfigError(f"{field}: {path}: no such file") from e
    except Exception as e:
        raise ConfigError(f"{field}: cannot load {path} ({_short(e)})") from e
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise ConfigError(
            f"{field}: {path} is not a DBNet checkpoint of this project (no 'model' entry); "
            "for backbone-only weights use model.weights"
        )
    own = model.state_dict()
    mismatch = _first_mismatch(own, weights)
    if mismatch is not None:
        theirs = checkpoint_backbone(state) or "not recorded in the checkpoint"
        raise ConfigError(
            f"{field}: {path} does not fit this DBNet: {mismatch}; "
            f"checkpoint backbone {theirs}, config backbone {backbone!r} "
            "(model.backbone and model.neck_channels must match the run that wrote it)"
        )
    model.load_state_dict(weights, strict=True)
    log.info("model.init_checkpoint: loaded all %d tensors from %s", len(own), path)


def _first_mismatch(own: dict[str, torch.Tensor], theirs: dict[str, Any]) -> str | None:
    """The first tensor that is missing, unexpected or shaped differently, in words."""
    for name, tensor in own.items():
        other = theirs.get(name)
        if not isinstance(other, torch.Tensor):
            return f"tensor {name} is missing from the checkpoint"
        if other.shape != tensor.shape:
            return (
                f"tensor {name} has shape {list(other.shape)} in the checkpoint, "
                f"{list(tensor.shape)} here"
            )
    extra = [name for name in theirs if name not in own]
    if extra:
        return f"tensor {extra[0]} of the checkpoint has no place here"
    return None


def _first(names: list[str], n: int = 3) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _short(e: BaseException) -> str:
    """An exception's message on one line, cut to a readable length."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
