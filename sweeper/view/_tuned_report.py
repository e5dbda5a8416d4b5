"""What ``sweeper tune-postprocess`` prints for each tuned trial."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from sweeper.text import number
from sweeper.tuned_postprocess import TunedPostprocess

if TYPE_CHECKING:  # torch loads with it; the command has loaded it already
    from trainer_core.prob_maps import CachedMaps


def print_tuned(trial: int, tuned: TunedPostprocess, cached: CachedMaps, console: Console) -> None:
    """Where the maps came from, val and gap-split H-mean before and after, the values found;
    a warning when the gap split lost what val gained."""
    how = "reused" if cached.reused else "made by one inference pass"
    params = ", ".join(f"{k}={number(v)}" for k, v in tuned.params.items())
    lines = [
        f"trial {trial}: maps of {len(cached.val)} val and {len(cached.gap)} "
        f"{cached.gap_split} images {how} ({cached.path}); {tuned.search_trials} search "
        f"trials in study {tuned.search_study}",
        f"  val H {100 * tuned.val_before:.2f} -> {100 * tuned.val_after:.2f}; "
        f"{tuned.gap_split} H {100 * tuned.gap_before:.2f} -> {100 * tuned.gap_after:.2f}; "
        f"best: {params}",
    ]
    if tuned.gap_after < tuned.gap_before:
        lines.append(f"  warning: the {tuned.gap_split} H-mean fell: the tuned values fit val only")
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)
