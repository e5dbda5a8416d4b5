"""StudySpec: what a sweep searches, how it samples, prunes and ranks, validated up front.

A spec is YAML with these sections (unknown keys are errors everywhere)::

    name: receipts-dbnet
    search_space:                     # Optuna parameter names are these keys
      lr: {low: 1.0e-4, high: 1.0e-3, log: true}
      T_max: {low: 18, high: 24}      # int: the train-config field is an int
      postprocess.unclip_ratio: {low: 1.5, high: 2.5}
      model.backbone: {choices: [resnet18, resnet34]}
    sampler: {seed: 0, n_startup_trials: 10, multivariate: true}   # TPE
    pruner: {min_resource: 2, reduction_factor: 3}                 # Hyperband, in epochs
                                      # (kind: hyperband, successive_halving or none)
    budget: {n_trials: 60, timeout_s: 86400, gpu_hours: 120}          # first reached
    retries: {max_retries: 2}
    ranking: {gap_source: holdout, penalty: 1.0, tolerance: 0.005}
    baselines: [{lr: 3.85e-4, T_max: 22, ...}]                     # enqueued first
    postprocess_search: {thresh: {low: 0.2, high: 0.4, step: 0.01}}  # tune-postprocess
    retention: {keep_pruned: 3, top_k: 10, outside_top: none}      # checkpoints kept
    tracking: {wandb: {project: receipts, mode: offline}}           # or mlflow, tensorboard
    base: {...}                       # a trainer_core TrainConfig

Search-space names are dotted TrainConfig paths (``optimizer.backbone_lr_mult``) or the
short names ``lr``, ``weight_decay``, ``T_max`` and ``eta_min``. A range is an int range
when the field is an int, else a float range.

The pydantic models are here, with :func:`parse_spec`; each checks its own fields, and the
rules that relate fields of different sections run in :class:`StudySpec`'s validator
(:mod:`sweeper.define._spec_rules`). Reading a file: :mod:`sweeper.define._spec_file`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storage import HeartbeatSettings
from sweeper.define._brackets import brackets, ideal_saving, rungs
from sweeper.define._spec_rules import check_rules, t_max_warning
from sweeper.define._tracking_spec import TrackingSpec
from sweeper.errors import SpecError
from trainer_core.config import TrainConfig, apply_overrides, format_validation_error
from trainer_core.config_paths import numeric_kind

SCHEMA_VERSION = 1
"""Version of the spec layout stored on a study; bump it when a stored spec stops parsing."""

SHORT_NAMES = {
    "lr": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay",
    "T_max": "scheduler.T_max",
    "eta_min": "scheduler.eta_min",
}
"""Short search-space names and the TrainConfig fields they stand for."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
Choice = bool | int | float | str | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Strict):
    """One search-space entry: a range ``{low, high, log, step}`` or ``{choices: [...]}``."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    choices: list[Choice] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("give either choices or a range (low/high/log/step), not both")
            if len(self.choices) < 2:
                raise ValueError("choices needs two or more values; set a fixed value in base")
            if len({repr(c) for c in self.choices}) < len(self.choices):
                raise ValueError(f"choices {self.choices} repeat a value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices")
        if not self.low < self.high:
            raise ValueError(
                f"low ({self.low:g}) must be below high ({self.high:g}); "
                "for a fixed value set it in base"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("step and log do not go together: a log range is continuous")
        if self.step is not None and not _on_grid(self.high, self.low, self.step):
            raise ValueError(
                f"high - low ({self.high - self.low:g}) must be a multiple of step ({self.step:g})"
            )
        return self

    @property
    def is_choice(self) -> bool:
        """True for ``{choices: [...]}``, False for a range."""
        return self.choices is not None

    def span(self) -> tuple[float, float]:
        """Smallest and largest value this entry can sample (numeric entries only)."""
        if self.choices is not None:
            numbers = [float(c) for c in self.choices if c is not None]
            return min(numbers), max(numbers)
        assert self.low is not None and self.high is not None  # checked by _check
        return float(self.low), float(self.high)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this entry can sample."""
        if self.choices is not None:
            return any(_same(value, c) for c in self.choices)
        if not _is_number(value):
            return False
        assert self.low is not None and self.high is not None  # checked by _check
        if not self.low <= value <= self.high:
            return False
        return self.step is None or _on_grid(value, self.low, self.step)

    def describe(self) -> str:
        """Short text for messages: ``1e-05..0.0003 log`` or ``choices [a, b]``."""
        if self.choices is not None:
            return f"choices {self.choices}"
        text = f"{self.low:g}..{self.high:g}"
        if self.log:
            text += " log"
        if self.step is not None:
            text += f" step {self.step:g}"
        return text


class SamplerSpec(_Strict):
    """The TPE sampler."""

    seed: int | None = Field(None, description="None = a different sequence every run")
    n_startup_trials: int = Field(10, ge=0, description="random trials before TPE models")
    multivariate: bool = Field(True, description="model parameters jointly (lr with eta_min)")
    constant_liar: bool = Field(
        True, description="treat running trials as bad guesses so parallel workers spread out"
    )


PrunerKind = Literal[
    "auto", "hyperband", "successive_halving", "best_so_far", "schedule_aware", "none"
]

AUTO_WITH_T_MAX: PrunerKind = "best_so_far"
"""What ``kind: auto`` runs when the spec searches ``T_max`` (see :meth:`StudySpec.pruner_kind`)."""
AUTO_WHY = (
    "replayed on the receipts-shaped pool it trained 3.8x fewer epochs than no pruning with "
    "Hyperband's pick regret, where Hyperband saved 2.1x; BENCHMARKS.md"
)
"""Why, for create-study."""


class PrunerSpec(_Strict):
    """The pruner; resources are epochs (one report per epoch), the last epoch never prunes.

    ``hyperband`` hedges over brackets whose first rung is at ``min_resource``,
    ``min_resource × reduction_factor``, ...; ``successive_halving`` runs only the most
    aggressive bracket (rungs at ``min_resource × reduction_factor**k``); ``best_so_far``
    the same rungs comparing each trial's best val H-mean so far (what it is finally ranked
    by) instead of its latest; ``schedule_aware`` is successive halving with those rungs as
    fractions of each trial's own ``T_max`` (:class:`sweeper.define.SchedulePhasePruner`),
    so trials are compared at the same phase of their cosine; ``none`` never prunes (the
    baseline that pruning is measured against); ``auto`` (the default) is ``hyperband``,
    or, when the spec searches ``T_max``, what the replays measured best there
    (:data:`AUTO_WITH_T_MAX`).
    """

    kind: PrunerKind = "auto"
    min_resource: int = Field(1, ge=1, description="epochs every trial runs at least")
    max_resource: int | None = Field(
        None, ge=1, description="Hyperband's R; it is the epochs trained: leave it unset"
    )
    reduction_factor: int = Field(3, ge=2, description="keep 1 of this many per rung")


class BudgetSpec(_Strict):
    """When the sweep stops: after n_trials trials, timeout_s or gpu_hours, first reached."""

    n_trials: int = Field(ge=1)
    timeout_s: float | None = Field(None, gt=0, description="wall-clock limit; None = none")
    gpu_hours: float | None = Field(
        None,
        gt=0,
        description="device-hours the trials may spend (their cost ledgers; a CPU process "
        "counts as one device); None = no limit",
    )

    def describe(self) -> str:
        """``60 trials, 120 GPU-hours, 86400 s``: the limits that are set."""
        parts = [f"{self.n_trials} trials"]
        if self.gpu_hours is not None:
            parts.append(f"{self.gpu_hours:g} GPU-hours")
        if self.timeout_s is not None:
            parts.append(f"{self.timeout_s:g} s")
        return ", ".join(parts)


class RetriesSpec(_Strict):
    """Re-queuing of trials that failed or whose worker died (stale heartbeat)."""

    max_retries: int = Field(HeartbeatSettings().max_retry, ge=0)


class RankingSpec(_Strict):
    """Score = val_hmean - penalty * max(0, gap - tolerance); H-mean values are 0..1."""

    gap_source: Literal["holdout", "train"] = Field(
        "holdout",
        description="holdout: val - holdout H-mean; train: train-subset - val H-mean",
    )
    penalty: float = Field(1.0, ge=0.0)
    tolerance: float = Field(0.005, ge=0.0, lt=1.0, description="gap allowed without penalty")
    rule: Literal["score", "val", "holdout", "mean"] = Field(
        "score",
        description="what rank and export-best sort by unless --by says otherwise: score, "
        "val, holdout or mean (of val and holdout H-mean); see benchmarks/selection.py",
    )


class RetentionSpec(_Strict):
    """Which checkpoints a finished trial keeps (:mod:`sweeper.run._retention`).

    A completed trial keeps ``best.pt`` (weights only) and drops ``last.pt``; pruned trials
    keep both only among the ``keep_pruned`` best (so they can be promoted).
    """

    keep_pruned: int = Field(3, ge=0, description="best pruned trials that stay promotable")
    top_k: int | None = Field(
        None, ge=1, description="completed trials by the ranking that always keep best.pt"
    )
    outside_top: Literal["best", "none"] = Field(
        "best", description="what completed trials outside top_k keep: best.pt, or nothing"
    )

    @model_validator(mode="after")
    def _check(self) -> RetentionSpec:
        if self.outside_top == "none" and self.top_k is None:
            raise ValueError("outside_top: none needs top_k (which trials keep best.pt)")
        return self


POSTPROCESS_SEARCHED = ("thresh", "box_thresh", "unclip_ratio", "max_candidates")
"""The post-processing fields ``sweeper tune-postprocess`` searches."""


class PostprocessSearchSpec(_Strict):
    """What ``sweeper tune-postprocess`` searches on a trial's cached probability maps.

    Each field is a range of the ``postprocess`` field of that name; a step lets the search
    reuse the geometry of settings it has already scored (the defaults have one).
    """

    thresh: ParamSpec = Field(default_factory=lambda: ParamSpec(low=0.1, high=0.6, step=0.01))
    box_thresh: ParamSpec = Field(default_factory=lambda: ParamSpec(low=0.1, high=0.9, step=0.01))
    unclip_ratio: ParamSpec = Field(default_factory=lambda: ParamSpec(low=1.2, high=2.6, step=0.1))
    max_candidates: ParamSpec = Field(
        default_factory=lambda: ParamSpec(low=100, high=1000, step=50)
    )
    n_trials: int = Field(300, ge=1, description="search trials per tune-postprocess call")
    seed: int | None = Field(0, description="the search's TPE seed; None = a new one each call")

    def ranges(self) -> dict[str, ParamSpec]:
        """Field name -> its range, in :data:`POSTPROCESS_SEARCHED` order."""
        return {name: getattr(self, name) for name in POSTPROCESS_SEARCHED}


class StudySpec(_Strict):
    """A validated study spec; :mod:`sweeper.define` shows the layout,
    :mod:`~sweeper.define._spec_rules` the rules.

    Example:
        >>> spec = load_spec("studies/demo.yaml")
        >>> spec.train_config({"lr": 3e-4, "T_max": 5}).scheduler.T_max
        5
    """

    name: str
    search_space: dict[str, ParamSpec] = Field(min_length=1)
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    budget: BudgetSpec
    retries: RetriesSpec = RetriesSpec()
    ranking: RankingSpec = RankingSpec()
    baselines: list[dict[str, Any]] = []
    postprocess_search: PostprocessSearchSpec = Field(default_factory=PostprocessSearchSpec)
    retention: RetentionSpec = RetentionSpec()
    tracking: TrackingSpec | None = None
    base: TrainConfig

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                f"{name!r}: use up to 128 letters, digits, '.', '_' and '-', starting with a "
                "letter or digit (the name appears in the database and in artifact paths)"
            )
        return name

    @model_validator(mode="after")
    def _check(self) -> StudySpec:
        check_rules(self)
        return self

    @property
    def max_resource(self) -> int:
        """Hyperband's max_resource: the epochs a trial trains."""
        return self.base.epochs

    def rungs(self) -> list[int]:
        """Epochs where the most aggressive bracket may prune (before the last epoch).

        Example:
            >>> load_spec("studies/demo.yaml").rungs()  # doctest: +SKIP
            [1, 3, 9]
        """
        if self.pruner_kind == "none":
            return []
        return rungs(self.pruner.min_resource, self.pruner.reduction_factor, self.base.epochs)

    @property
    def t_max_param(self) -> str | None:
        """The search-space name that sets ``scheduler.T_max`` (None: not searched)."""
        return next((n for n in self.search_space if self.param_path(n) == "scheduler.T_max"), None)

    @property
    def pruner_kind(self) -> PrunerKind:
        """The pruner that runs: ``pruner.kind``, with ``auto`` resolved."""
        if self.pruner.kind != "auto":
            return self.pruner.kind
        return AUTO_WITH_T_MAX if self.t_max_param is not None else "hyperband"

    def describe_pruning(self) -> str:
        """One line for create-study: the pruner (and why, when chosen), its rungs and the
        best it can save."""
        p, epochs, kind = self.pruner, self.base.epochs, self.pruner_kind
        if kind == "none":
            return f"pruning: none (every trial trains {epochs} epochs)"
        arithmetic = "hyperband" if kind == "hyperband" else "successive_halving"
        found = brackets(p.min_resource, p.reduction_factor, epochs, arithmetic)
        name = {
            "hyperband": f"Hyperband, {len(found)} brackets",
            "successive_halving": "successive halving",
            "best_so_far": "successive halving on each trial's best H-mean so far",
            "schedule_aware": "schedule-aware successive halving (rungs at the same fraction "
            "of each trial's T_max)",
        }[kind]
        if p.kind == "auto" and self.t_max_param is not None:
            name += f", chosen for a T_max search by pruner.kind: auto ({AUTO_WHY})"
        saving = ideal_saving(p.min_resource, p.reduction_factor, epochs, arithmetic)
        return (
            f"pruning: {name}; rungs at epochs {', '.join(map(str, self.rungs()))} of {epochs} "
            f"(keeping 1 in {p.reduction_factor}); at best {saving:.1f}x fewer epochs than "
            "without pruning"
        )

    def param_path(self, name: str) -> str:
        """The TrainConfig path a search-space name sets (``lr`` -> ``optimizer.lr``)."""
        return SHORT_NAMES.get(name, name)

    def is_int(self, name: str) -> bool:
        """Whether search-space range ``name`` samples ints (its train-config field is an int)."""
        return numeric_kind(self.param_path(name)) == "int"

    def train_config(self, params: Mapping[str, Any]) -> TrainConfig:
        """The base config with sampled parameters set: what one trial trains.

        Args:
            params: search-space name -> value, e.g. ``trial.params``.

        Raises:
            SpecError: a name that is not in the search space.
            ConfigError: a value the train config rejects.

        Example:
            >>> load_spec("studies/demo.yaml").train_config({"lr": 3e-4}).optimizer.lr
            0.0003
        """
        unknown = sorted(set(params) - set(self.search_space))
        if unknown:
            raise SpecError(
                f"parameters {unknown} are not in the search space "
                f"(names: {', '.join(self.search_space)})"
            )
        return apply_overrides(self.base, {self.param_path(n): v for n, v in params.items()})

    def renamed(self, name: str) -> StudySpec:
        """This spec under another study name, validated again."""
        return parse_spec({**self.model_dump(mode="json"), "name": name})

    def warnings(self) -> list[str]:
        """Things that are allowed but probably not meant; create-study prints them."""
        t_max = t_max_warning(self)
        return [t_max] if t_max else []


def parse_spec(data: Mapping[str, Any], source: str = "") -> StudySpec:
    """A :class:`StudySpec` from a mapping (YAML or a stored spec), or :class:`SpecError`.

    Args:
        data: the spec as plain data.
        source: where it came from (a file name), to start the error message with.

    Example:
        >>> parse_spec({"name": "x", "budget": {"n_trials": 0}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        sweeper.errors.SpecError: search_space: Field required; budget.n_trials: ...
    """
    try:
        return StudySpec.model_validate(data)
    except ValidationError as e:
        where = f"{source}: " if source else ""
        raise SpecError(where + format_validation_error(e)) from e


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equal as numbers (2 == 2.0), else equal and of one type (True is not 1, "1" is not 1)."""
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _on_grid(value: float, low: float, step: float) -> bool:
    """Whether ``value`` is ``low`` plus a whole number of ``step``s (float-tolerant)."""
    n = (value - low) / step
    return abs(n - round(n)) < 1e-9 * max(1.0, abs(n))
