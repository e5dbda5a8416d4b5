"""The DB loss: balanced BCE (probability), masked L1 (threshold), dice (binary)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer_core.config import LossConfig

__all__ = ["DBLoss"]

_EPS = 1e-6


class DBLoss(nn.Module):
    """``prob_weight * BCE + thresh_weight * L1 + binary_weight * dice``, in float32.

    The probability term is BCE on logits (autocast-safe, unlike BCE on sigmoid outputs)
    with hard-negative mining: all positives plus the ``negative_ratio`` x as many hardest
    negatives. Returns the total and its parts (detached) for logging.
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gt, mask = batch["prob"].float(), batch["prob_mask"].float()
        bce = self._balanced_bce(out["prob_logits"].float(), gt, mask)
        tmask = batch["thresh_mask"].float()
        l1 = ((out["thresh"].float() - batch["thresh"].float()).abs() * tmask).sum() / (
            tmask.sum() + _EPS
        )
        binary = torch.sigmoid(out["binary_logits"].float())
        inter = (binary * gt * mask).sum()
        dice = 1 - 2 * inter / ((binary * mask).sum() + (gt * mask).sum() + _EPS)
        c = self.cfg
        total = c.prob_weight * bce + c.thresh_weight * l1 + c.binary_weight * dice
        parts = {"bce": bce.detach(), "l1": l1.detach(), "dice": dice.detach()}
        return total, parts

    def _balanced_bce(
        self, logits: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        positive = gt * mask
        negative = (1 - gt) * mask
        n_pos = int(positive.sum().item())
        n_neg = min(int(negative.sum().item()), int(n_pos * self.cfg.negative_ratio))
        loss = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
        pos_loss = (loss * positive).sum()
        neg_loss = (loss * negative).flatten()
        hard = neg_loss.topk(n_neg).values.sum() if n_neg else neg_loss.new_zeros(())
        return (pos_loss + hard) / (n_pos + n_neg + _EPS)
