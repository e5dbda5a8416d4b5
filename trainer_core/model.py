"""DBNet: a timm backbone, an FPN neck and the differentiable-binarization head.

Liao et al., "Real-time Scene Text Detection with Differentiable Binarization" (AAAI 2020).
The backbone's last four feature levels (strides 4, 8, 16, 32) feed the FPN; their channel
counts come from ``feature_info``, so any timm model with four such levels works.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer_core.config import ModelConfig
from trainer_core.errors import ConfigError
from trainer_core.weights import create_backbone, load_backbone_file, load_init_checkpoint

__all__ = ["DBNet", "build_model"]


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FPN(nn.Module):
    """Top-down feature pyramid; every level upsampled to stride 4 and concatenated."""

    def __init__(self, in_channels: list[int], inner: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, inner, 1, bias=False) for c in in_channels)
        self.smooth = nn.ModuleList(_conv_bn_relu(inner, inner // 4) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        size = laterals[0].shape[-2:]
        outs = [
            F.interpolate(smooth(x), size=size, mode="nearest") if i else smooth(x)
            for i, (smooth, x) in enumerate(zip(self.smooth, laterals, strict=True))
        ]
        return torch.cat(outs, dim=1)


class Head(nn.Module):
    """Stride-4 features -> one full-resolution map (logits), as in the DB paper."""

    def __init__(self, inner: int) -> None:
        super().__init__()
        mid = inner // 4
        self.body = nn.Sequential(
            _conv_bn_relu(inner, mid),
            nn.ConvTranspose2d(mid, mid, 2, stride=2),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(mid, 1, 2, stride=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


class DBNet(nn.Module):
    """Text detector. ``forward`` returns a dict of maps at the input's resolution.

    Training (``self.training``): ``prob_logits``, ``thresh`` (probabilities) and
    ``binary_logits`` (``k * (P - T)``, the approximate binarization), all float32 so the
    k-step and the losses stay exact under autocast. Evaluation: ``prob`` only; the
    threshold branch is not needed at inference.

    Example:
        >>> model = build_model(ModelConfig(backbone="resnet10t", neck_channels=64))
        >>> model.eval()(torch.zeros(1, 3, 64, 64))["prob"].shape
        torch.Size([1, 64, 64])
    """

    def __init__(self, backbone: nn.Module, neck_channels: int, k: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = FPN(backbone.feature_info.channels(), neck_channels)
        self.prob_head = Head(neck_channels)
        self.thresh_head = Head(neck_channels)
        self.k = k

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        fused = self.neck(self.backbone(images))
        prob_logits = self.prob_head(fused).float()
        if not self.training:
            return {"prob": torch.sigmoid(prob_logits)}
        thresh = torch.sigmoid(self.thresh_head(fused).float())
        binary_logits = self.k * (torch.sigmoid(prob_logits) - thresh)
        return {"prob_logits": prob_logits, "thresh": thresh, "binary_logits": binary_logits}


def build_model(cfg: ModelConfig, pretrained_overlay: dict[str, Any] | None = None) -> DBNet:
    """DBNet on ``cfg.backbone``, starting where ``cfg`` says (see ``trainer_core.weights``).

    Args:
        cfg: the model section.
        pretrained_overlay: with ``cfg.pretrained``, timm's ``pretrained_cfg_overlay``
            (``{"file": PATH}`` reads timm's pretrained weights from a local file).

    Raises:
        ConfigError: an unusable backbone or starting point, in one line.
    """
    backbone = create_backbone(cfg.backbone, cfg.pretrained, pretrained_overlay)
    reductions = backbone.feature_info.reduction()
    if reductions != [4, 8, 16, 32]:
        raise ConfigError(
            f"model.backbone: {cfg.backbone!r} has feature strides {reductions}; "
            "DBNet needs four levels at strides 4, 8, 16, 32"
        )
    if cfg.weights is not None:
        load_backbone_file(backbone, cfg.weights)
    model = DBNet(backbone, cfg.neck_channels, cfg.k)
    if cfg.init_checkpoint is not None:
        load_init_checkpoint(model, cfg.init_checkpoint, cfg.backbone)
    return model
