"""What a trial's training produced, as one type: the contract between its writer and readers.

The objective turns a :class:`trainer_core.fit.FitResult` into a :class:`TrialResult` and
stores it as the trial's user attributes (:meth:`TrialResult.to_attrs`, one transaction);
ranking, status, export, verify, promotion and the dashboard's columns read it back with
:meth:`TrialResult.from_attrs`. The field names are the attribute names, so this module is
the only place that spells them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sweeper.recorded_scores import RecordedScore
from sweeper.text import percent, time_split

__all__ = [
    "METRIC_ATTRS",
    "RECORDED_HEADING",
    "RESULT_ATTRS",
    "TrialCost",
    "TrialResult",
    "own_cost",
    "penalized_score",
]


@dataclass(frozen=True)
class TrialCost:
    """What one trial's own attempt spent on its slot (the ledger, ``sweeper.run._cost``).

    ``device_s`` is the attempt's wall time times the devices its slot holds (one GPU, a
    share of one, or one CPU process); the three ``*_device_s`` split it into training,
    evaluation and overhead (model build, checkpoints, result writes, pictures) and add up
    to it. ``epoch_device_s`` is each epoch's cost by epoch number (JSON keys are text).
    The device figures are None where nothing measured them (no NVML, or a CPU).

    A retry copies its failed predecessor's attributes, cost included: ``trial`` says whose
    attempt a cost is, so a copy is never counted twice (:func:`own_cost`). Costs add up
    (``a + b``) along a retry chain.
    """

    trial: int
    kind: str
    """``cuda`` or ``cpu``."""
    devices: float
    wall_s: float
    device_s: float
    training_device_s: float
    evaluation_device_s: float
    overhead_device_s: float
    device_name: str | None = None
    utilization_pct: float | None = None
    """Mean GPU utilisation, 0-100 (NVML)."""
    peak_memory_mb: float | None = None
    """Peak GPU memory of the trial's process (NVML, else torch)."""
    epoch_device_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def zero(cls) -> TrialCost:
        """Nothing spent: the start of a sum."""
        return cls(-1, "cpu", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def __add__(self, other: TrialCost) -> TrialCost:
        """Two attempts of one chain (or any two costs) together.

        The device figures keep the latest attempt's name, the peak of the peaks and the
        utilisation averaged by device-seconds; epochs trained twice (a resume repeats
        none, a restart from scratch may) add up.
        """
        utils = [(c.utilization_pct, c.device_s) for c in (self, other) if c.utilization_pct]
        weight = sum(w for _, w in utils)
        peaks = [c.peak_memory_mb for c in (self, other) if c.peak_memory_mb is not None]
        epochs = dict(self.epoch_device_s)
        for epoch, seconds in other.epoch_device_s.items():
            epochs[epoch] = round(epochs.get(epoch, 0.0) + seconds, 3)
        total = self.device_s + other.device_s
        wall = self.wall_s + other.wall_s
        return TrialCost(
            trial=max(self.trial, other.trial),
            kind="cuda" if "cuda" in (self.kind, other.kind) else "cpu",
            devices=total / wall if wall else other.devices,
            wall_s=round(wall, 3),
            device_s=round(total, 3),
            training_device_s=round(self.training_device_s + other.training_device_s, 3),
            evaluation_device_s=round(self.evaluation_device_s + other.evaluation_device_s, 3),
            overhead_device_s=round(self.overhead_device_s + other.overhead_device_s, 3),
            device_name=other.device_name or self.device_name,
            utilization_pct=round(sum(u * w for u, w in utils) / weight, 1) if weight else None,
            peak_memory_mb=max(peaks) if peaks else None,
            epoch_device_s=epochs,
        )

    def describe(self) -> str:
        """One line: ``0.0123 GPU-h (training 81%, evaluation 12%, overhead 7%) · NAME ...``."""
        unit = "GPU-h" if self.kind == "cuda" else "device-h"
        split = time_split(self.training_device_s, self.evaluation_device_s, self.overhead_device_s)
        facts = [
            f"{self.device_s / 3600:.3g} {unit} ({split})",
            self.device_name,
            f"util {self.utilization_pct:g}%" if self.utilization_pct is not None else None,
            f"GPU peak {self.peak_memory_mb:g} MB" if self.peak_memory_mb is not None else None,
        ]
        return " · ".join(f for f in facts if f)

    @classmethod
    def from_attr(cls, value: Any) -> TrialCost | None:
        """The cost stored as a dict, or None for anything that is not one."""
        if isinstance(value, TrialCost):
            return value
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(**value)
        except TypeError:
            return None  # written by another version of the ledger


def own_cost(number: int, attrs: Mapping[str, Any]) -> TrialCost | None:
    """Trial ``number``'s own cost from its attributes; None where it has none, or only
    the copy a retry inherited from the trial before it."""
    cost = TrialCost.from_attr(attrs.get("cost"))
    return cost if cost is not None and cost.trial == number else None


RECORDED_HEADING = "**recorded test scores** (sweeper record-test)"
"""Where a trial's note ends and the recorded scores' section begins."""


def _metric() -> Any:
    """A detection figure: a field :data:`METRIC_ATTRS` lists."""
    return field(default=None, metadata={"metric": True})


@dataclass(frozen=True)
class TrialResult:
    """One trial's results; a field is None where the run never produced it.

    The metrics (``val_*``, ``gap_*``, ``score``, ``best_epoch``) exist once a run has
    validated at least once; the run's facts (stop reason, epochs, throughput, ...) once
    ``fit`` returned. A trial that failed before either has an empty result.
    """

    stop_reason: str | None = None
    epochs_run: int | None = None
    images_per_s: float | None = None
    peak_memory_mb: float | None = None
    device: str | None = None
    precision: str | None = None
    """The autocast precision the run trained in (fp32, fp16, bf16)."""
    batch_size: int | None = None
    """The batch it ended with (the out-of-memory retry may have halved it)."""
    checkpoint_dir: str | None = None
    """Its checkpoints, relative to the workers' ``--artifacts`` where they lie under it."""
    val_precision: float | None = _metric()
    val_recall: float | None = _metric()
    val_hmean: float | None = _metric()
    gap_split: str | None = None
    """Where the gap was measured: ``holdout`` or ``train``."""
    gap_precision: float | None = _metric()
    gap_recall: float | None = _metric()
    gap_hmean: float | None = _metric()
    gap: float | None = _metric()
    """val H-mean minus the gap split's H-mean at the best epoch."""
    score: float | None = _metric()
    """The penalized score with the spec's penalty and tolerance when the trial ran."""
    best_epoch: int | None = None
    cost: TrialCost | None = None
    """What this trial's own attempt spent (its retry chain's is the sum of its members')."""

    @property
    def scored(self) -> bool:
        """Whether the trial has the figures a ranking needs (val and gap H-mean, gap)."""
        return None not in (self.val_hmean, self.gap_hmean, self.gap)

    def rescored(self, penalty: float, tolerance: float) -> float:
        """The score with another penalty and tolerance (the stored one used the spec's).

        Raises:
            ValueError: the trial has no val H-mean and gap to score.
        """
        if self.val_hmean is None or self.gap is None:
            raise ValueError("the trial has no val H-mean and gap to score")
        return penalized_score(self.val_hmean, self.gap, penalty, tolerance)

    def note(self, chain_cost: TrialCost | None = None) -> str:
        """The trial's results as Markdown, for its note in optuna-dashboard.

        Figures in percentage points, as ``sweeper rank`` prints them; the gap row says
        how much val overstates each of P, R and H on the split no one selected on. The
        last line is the cost: ``chain_cost`` (a retried or resumed trial's, with its
        predecessors) where given, else its own.
        """
        facts = [
            f"{self.stop_reason or 'no stop reason'} after {self.epochs_run} epoch(s)",
            f"best epoch {self.best_epoch}" if self.best_epoch is not None else None,
            " ".join(x for x in (self.device, self.precision) if x) or None,
            f"batch {self.batch_size}" if self.batch_size is not None else None,
            f"{self.images_per_s:g} img/s" if self.images_per_s is not None else None,
            f"peak {self.peak_memory_mb:g} MB" if self.peak_memory_mb is not None else None,
        ]
        lines = [" · ".join(f for f in facts if f)]
        cost = chain_cost or self.cost
        if cost is not None:
            chained = " (its retry chain)" if chain_cost is not None else ""
            lines.append(f"\ncost{chained}: {cost.describe()}")
        if self.scored:
            split = self.gap_split or "gap split"
            val = (self.val_precision, self.val_recall, self.val_hmean)
            gap = (self.gap_precision, self.gap_recall, self.gap_hmean)
            over = tuple(
                None if v is None or g is None else v - g for v, g in zip(val, gap, strict=True)
            )
            lines[:0] = [
                f"**score {percent(self.score)}** · val H {percent(self.val_hmean)} · "
                f"{split} H {percent(self.gap_hmean)} · gap {percent(self.gap, signed=True)}",
                "",
                "| | P | R | H |",
                "|---|---:|---:|---:|",
                _row("val", val),
                _row(split, gap),
                _row(f"val − {split}", over, signed=True),
                "",
            ]
        return "\n".join(lines) + "\n"

    def recorded_section(self, recorded: Sequence[RecordedScore]) -> str:
        """The scores ``sweeper record-test`` kept, as a Markdown section that follows the
        note: a row per score and one with how much val overstated it."""
        val = (self.val_precision, self.val_recall, self.val_hmean)
        rows = [RECORDED_HEADING, "", "| | P | R | H |", "|---|---:|---:|---:|"]
        for score in recorded:
            test = (score.precision, score.recall, score.hmean)
            drop = tuple(
                None if v is None or t is None else v - t for v, t in zip(val, test, strict=True)
            )
            rows += [_row(score.label, test), _row(f"val − {score.label}", drop, signed=True)]
        return "\n".join(rows) + "\n"

    def to_attrs(self) -> dict[str, Any]:
        """The user attributes that store it: every field that is not None."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialResult:
        """Read it back from a trial's user attributes; other attributes are ignored.

        The cost read back is whatever the attributes hold, a retry's inherited copy
        included; :func:`own_cost` tells the two apart.
        """
        values = {name: attrs[name] for name in RESULT_ATTRS if name in attrs}
        if "cost" in values:
            values["cost"] = TrialCost.from_attr(values["cost"])
        return cls(**values)


def _row(label: str, values: tuple[float | None, ...], signed: bool = False) -> str:
    """One Markdown table row of figures in percentage points."""
    return f"| {label} | " + " | ".join(percent(v, signed) for v in values) + " |"


RESULT_ATTRS: tuple[str, ...] = tuple(f.name for f in fields(TrialResult))
"""The user attributes a trial's result occupies, in field order."""

METRIC_ATTRS: tuple[str, ...] = tuple(
    f.name for f in fields(TrialResult) if f.metadata.get("metric")
)
"""The detection figures among them (val and gap split P/R/H, gap, score), in table order."""


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
