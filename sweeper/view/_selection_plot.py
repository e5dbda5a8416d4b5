"""The ranking as a picture: validation H-mean against the gap split's, one point a trial.

Points below the diagonal did worse on data they were not selected on; the further below,
the more validation flattered them. The top trial by validation and the top trial by the
ranking rule are marked, so a pick that differs from the plain validation winner shows why.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from sweeper.rank import Ranking

matplotlib.use("Agg")  # no display on GPU nodes
import matplotlib.pyplot as plt


def selection_png(ranking: Ranking, path: Path, gap_split: str = "holdout") -> Path:
    """Write the val-vs-gap-split scatter of ``ranking`` to ``path`` (PNG) and return it.

    Args:
        ranking: from :func:`sweeper.rank._ranking.rank_study`; pruned trials are drawn faint.
        path: the PNG to write.
        gap_split: ``holdout`` or ``train``, for the axis label.

    Raises:
        ValueError: the ranking has no completed trial.
    """
    done = ranking.completed
    if not done:
        raise ValueError(f"study {ranking.study!r} has no completed trial to plot yet")
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    pruned = [p for p in ranking.pruned if p.val_hmean is not None and p.gap_hmean is not None]
    if pruned:
        ax.scatter(
            [100 * p.val_hmean for p in pruned],
            [100 * p.gap_hmean for p in pruned],
            s=18,
            color="gray",
            alpha=0.25,
            label=f"pruned ({len(pruned)})",
        )
    ax.scatter(
        [100 * t.val_hmean for t in done],
        [100 * t.gap_hmean for t in done],
        s=28,
        color="tab:blue",
        alpha=0.8,
        label=f"completed ({len(done)})",
    )
    xs = [100 * v for t in done for v in (t.val_hmean, t.gap_hmean)]
    lo, hi = min(xs) - 1, max(xs) + 1
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, alpha=0.6, label="val = " + gap_split)
    by_val = max(done, key=lambda t: t.val_hmean)
    pick = done[0]
    marks = [(by_val, "top by val", "tab:red", "x")]
    if pick.number != by_val.number or ranking.by != "val":
        marks.append((pick, f"top by {ranking.by}", "tab:green", "*"))
    for trial, label, colour, marker in marks:
        x, y = 100 * trial.val_hmean, 100 * trial.gap_hmean
        ax.scatter([x], [y], s=160, color=colour, marker=marker, zorder=3)
        ax.annotate(
            f"{label}: trial {trial.number}",
            (x, y),
            xytext=(8, -14 if marker == "x" else 8),
            textcoords="offset points",
            color=colour,
            fontsize=9,
        )
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("val H-mean (%)")
    ax.set_ylabel(f"{gap_split} H-mean (%)")
    ax.set_title(f"{ranking.study}: what validation promised and what held up", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
