"""The generalization-aware score a trial is ranked by (DESIGN.md, "The score")."""

from __future__ import annotations

__all__ = ["penalized_score"]


def penalized_score(val_hmean: float, gap: float, penalty: float, tolerance: float) -> float:
    """``val_hmean - penalty * max(0, gap - tolerance)``.

    A config that over-fits the validation split (high lr, low weight decay) shows a large
    gap between validation and data it was not selected on; this score ranks it below a
    slightly lower-scoring config that generalizes.

    Example:
        >>> round(penalized_score(0.966, gap=0.02, penalty=1.0, tolerance=0.005), 4)
        0.951
    """
    return val_hmean - penalty * max(0.0, gap - tolerance)
