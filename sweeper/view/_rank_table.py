"""Rich tables for ``sweeper rank`` (and the demo's closing ranking), readable at 80 columns.

H-means, precision, recall and gaps are printed in percentage points (``96.60``, ``+0.44``),
the way the team talks about them; the columns that matter come first and the rest are named
when the terminal is too narrow for them (``--wide`` shows every column).
"""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from sweeper.rank import RULE_LABELS, RankedTrial, Ranking, rule_value
from sweeper.text import compact, percent
from sweeper.view._tables import Column, fit_table, print_fitted

_HEADERS = {"weight_decay": "wd"}  # the one short name wider than its values


def _param_columns(names: list[str], rows: list) -> list[Column]:
    """A column per parameter; a dotted name shows its last part (``unclip_ratio``)."""
    return [
        Column(
            _HEADERS.get(name, name.rsplit(".", 1)[-1]),
            [compact(r.params.get(name, "-")) for r in rows],
        )
        for name in names
    ]


def _recorded_columns(labels: list[str], rows: list[RankedTrial]) -> list[Column]:
    """Per recorded label: its H-mean, and how much val overstated it (``sweeper
    record-test``)."""
    columns = []
    for label in labels:
        recorded = [t.recorded_hmean(label) for t in rows]
        pairs = zip(rows, recorded, strict=True)
        drops = [None if h is None else t.val_hmean - h for t, h in pairs]
        columns += [
            Column(f"{label} H", [percent(h) for h in recorded]),
            Column(f"val − {label}", [percent(d, signed=True) for d in drops]),
        ]
    return columns


def _trial_cell(trial: RankedTrial) -> str:
    """The trial number, starred when its post-processing was tuned."""
    return f"{trial.number}*" if trial.postprocess_tuned else str(trial.number)


def print_ranking(
    ranking: Ranking, console: Console, top: int | None = 10, wide: bool = False
) -> None:
    """Completed trials ranked, then pruned trials, then failure counts.

    Args:
        ranking: from :func:`sweeper.rank._ranking.rank_study`.
        console: where to print; its width decides which columns fit.
        top: completed trials to show (None: all).
        wide: every column, however wide the table gets.
    """
    width = None if wide else console.width
    names = sorted({k for t in ranking.completed + ranking.pruned for k in t.params})  # type: ignore[operator]
    sort = RULE_LABELS[ranking.by]
    title = (
        f"{ranking.study} by {sort}: "
        f"score = val H - {ranking.penalty:g} x max(0, gap - {100 * ranking.tolerance:g}) (in %)"
    )
    done = ranking.completed[:top]
    figures = {
        "score": Column("score", [percent(t.score) for t in done]),
        "val": Column("val H", [percent(t.val_hmean) for t in done]),
        "holdout": Column("holdout H", [percent(t.gap_hmean) for t in done]),
        "mean": Column(
            "mean H", [percent(rule_value("mean", t.val_hmean, t.gap_hmean)) for t in done]
        ),
    }
    # What the table is sorted by comes first, in bold; score and val H follow.
    key = replace(figures[ranking.by], required=True, style="bold")
    columns = [
        Column("#", [str(i) for i in range(1, len(done) + 1)], required=True),
        Column("trial", [_trial_cell(t) for t in done], required=True),
        key,
        *(figures[k] for k in ("score", "val") if k != ranking.by),
        *_recorded_columns(ranking.recorded_labels, done),
        Column("gap", [percent(t.gap, signed=True) for t in done]),
        Column("R gap", [percent(t.recall_gap, signed=True) for t in done]),
        *_param_columns(names, done),
        Column("P gap", [percent(t.precision_gap, signed=True) for t in done]),
        Column("epochs", [str(t.epochs) for t in done]),
        Column("val P", [percent(t.val_precision) for t in done]),
        Column("val R", [percent(t.val_recall) for t in done]),
        *([] if ranking.by == "holdout" else [replace(figures["holdout"], header="gap-split H")]),
    ]
    if done:
        print_fitted(console, fit_table(columns, width, title))
        if any(t.postprocess_tuned for t in done):
            console.print(
                "  * post-processing tuned on its cached maps (sweeper tune-postprocess); "
                "export-best writes the tuned values",
                markup=False,
            )
    else:
        console.print(f"{ranking.study}: no completed trial yet", markup=False)
    for agreement in ranking.recorded_agreement:
        console.print(agreement.describe(), markup=False)
    if ranking.pruned:
        pruned = ranking.pruned
        columns = [
            Column("trial", [str(p.number) for p in pruned], required=True),
            Column("stopped at epoch", [str(p.epoch) for p in pruned], required=True),
            Column("last val H", [percent(p.last_hmean) for p in pruned]),
            *_param_columns(names, pruned),
        ]
        if any(p.promoted_to is not None for p in pruned):
            promoted = [str(p.promoted_to) if p.promoted_to is not None else "-" for p in pruned]
            columns.insert(2, Column("promoted to", promoted, required=True))
        title = f"pruned by Hyperband ({len(pruned)})"
        print_fitted(console, fit_table(columns, width, title))
    if ranking.failed:
        console.print(f"failed trials: {sum(ranking.failed.values())}")
        for reason, count in ranking.failed.most_common():
            console.print(f"  {count} x {reason}", markup=False)
    if ranking.given_back:
        console.print(f"given back untrained (started past the budget): {ranking.given_back}")
    if ranking.running:
        console.print(f"still running: {ranking.running}")
    if ranking.saving is not None and ranking.saving.trials:
        console.print(ranking.saving.describe(), markup=False)
    for line in ranking.cost.lines() if ranking.cost is not None else []:
        console.print(line, markup=False, soft_wrap=True)
