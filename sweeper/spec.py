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
    budget: {n_trials: 60, timeout_s: 86400}
    retries: {max_retries: 2}
    ranking: {gap_source: holdout, penalty: 1.0, tolerance: 0.005}
    baselines: [{lr: 3.85e-4, T_max: 22, ...}]                     # enqueued first
    postprocess_search: {thresh: {low: 0.2, high: 0.4, step: 0.01}}  # tune-postprocess
    retention: {keep_pruned: 3, top_k: 10, outside_top: none}      # checkpoints kept
    base: {...}                       # a trainer_core TrainConfig

Search-space names are dotted TrainConfig paths (``optimizer.backbone_lr_mult``) or the
short names ``lr``, ``weight_decay``, ``T_max`` and ``eta_min``. A range is an int range
when the field is an int, else a float range.

Rules checked here, each failing with a :class:`SpecError` that names the field:

- every range has low < high (low > 0 on a log scale), every bound and choice is a valid
  value of its train-config field;
- ``eta_min`` is absolute (the lr the cosine anneals down to, not a fraction of lr), so
  every eta_min that can be sampled must be below every lr that can be sampled:
  ``eta_min.high < lr.low``, with a fixed base value standing in for an unsampled one;
- ``T_max`` stays within [1, 2 × base.epochs] (a T_max other than the epochs trained
  only warns, see :meth:`StudySpec.warnings`);
- pruning: ``max_resource`` is ``base.epochs`` (one report per epoch), and the first rung
  (``min_resource``) comes before the last epoch, where a trial is never pruned;
- ``ranking.gap_source: holdout`` needs a holdout split in ``base.data``;
- every baseline gives exactly the search-space names, each value inside the space.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storage import HeartbeatSettings
from sweeper.brackets import brackets, ideal_saving, rungs
from sweeper.errors import SpecError
from trainer_core.config import TrainConfig, apply_overrides, format_validation_error
from trainer_core.errors import ConfigError

__all__ = [
    "POSTPROCESS_SEARCHED",
    "SCHEMA_VERSION",
    "SHORT_NAMES",
    "BudgetSpec",
    "ParamSpec",
    "PostprocessSearchSpec",
    "PrunerSpec",
    "RankingSpec",
    "RetentionSpec",
    "RetriesSpec",
    "SamplerSpec",
    "StudySpec",
    "load_spec",
    "parse_spec",
]

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


class PrunerSpec(_Strict):
    """The pruner; resources are epochs (one report per epoch), the last epoch never prunes.

    ``hyperband`` hedges over brackets whose first rung is at ``min_resource``,
    ``min_resource × reduction_factor``, ...; ``successive_halving`` runs only the most
    aggressive bracket (rungs at ``min_resource × reduction_factor**k``); ``none`` never
    prunes (the baseline that pruning is measured against).
    """

    kind: Literal["hyperband", "successive_halving", "none"] = "hyperband"
    min_resource: int = Field(1, ge=1, description="epochs every trial runs at least")
    max_resource: int | None = Field(
        None, ge=1, description="Hyperband's R; it is the epochs trained: leave it unset"
    )
    reduction_factor: int = Field(3, ge=2, description="keep 1 of this many per rung")


class BudgetSpec(_Strict):
    """When the sweep stops: after n_trials finished trials or timeout_s, first reached."""

    n_trials: int = Field(ge=1)
    timeout_s: float | None = Field(None, gt=0, description="wall-clock limit; None = none")


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
    """Which checkpoints a finished trial keeps (:mod:`sweeper.retention`).

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
    """A validated study spec; see the module docstring for the layout and the rules.

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
        _check_search_space(self)
        _check_eta_min_below_lr(self)
        _check_t_max(self)
        _check_pruner(self)
        _check_ranking(self)
        _check_baselines(self)
        _check_postprocess_search(self)
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
        if self.pruner.kind == "none":
            return []
        return rungs(self.pruner.min_resource, self.pruner.reduction_factor, self.base.epochs)

    def describe_pruning(self) -> str:
        """One line for create-study: the pruner, its rungs and the best it can save."""
        p, epochs = self.pruner, self.base.epochs
        if p.kind == "none":
            return f"pruning: none (every trial trains {epochs} epochs)"
        found = brackets(p.min_resource, p.reduction_factor, epochs, p.kind)
        kind = (
            f"Hyperband, {len(found)} brackets" if p.kind == "hyperband" else "successive halving"
        )
        saving = ideal_saving(p.min_resource, p.reduction_factor, epochs, p.kind)
        return (
            f"pruning: {kind}; rungs at epochs {', '.join(map(str, self.rungs()))} of {epochs} "
            f"(keeping 1 in {p.reduction_factor}); at best {saving:.1f}x fewer epochs than "
            "without pruning"
        )

    def param_path(self, name: str) -> str:
        """The TrainConfig path a search-space name sets (``lr`` -> ``optimizer.lr``)."""
        return SHORT_NAMES.get(name, name)

    def is_int(self, name: str) -> bool:
        """Whether search-space range ``name`` samples ints (its train-config field is an int)."""
        return _numeric_kind(_field_annotation(self.param_path(name))) == "int"

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
        found = []
        t_max = _t_max_warning(self)
        if t_max:
            found.append(t_max)
        return found


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


def load_spec(path: Path | str) -> StudySpec:
    """Read and validate a YAML study spec.

    Raises:
        SpecError: the file is missing, unreadable, not YAML, or breaks a rule; the
            message starts with the file name.

    Example:
        >>> spec = load_spec("studies/demo.yaml")
        >>> spec.name
        'demo'
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise SpecError(f"{path}: no such file") from e
    except OSError as e:
        raise SpecError(f"{path}: cannot read ({e.strerror})") from e
    try:
        data = _safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return parse_spec(data, source=str(path))


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``).

    Learning rates are written like that; as strings they would become string choices.
    """


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` with :class:`_SpecLoader`'s float rule (plain data only)."""
    loader = _SpecLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


# ---- the rules, one function each ------------------------------------------------------


def _check_search_space(spec: StudySpec) -> None:
    """Names resolve to TrainConfig fields, once each; bounds and choices are valid values."""
    seen: dict[str, str] = {}
    for name, param in spec.search_space.items():
        path = spec.param_path(name)
        field = f"search_space.{name}"
        annotation = _field_annotation(path)
        if annotation is None:
            raise SpecError(f"{field}: {_unknown_field_hint(name, path)}")
        if path == "epochs":
            raise SpecError(f"{field}: epochs is Hyperband's resource; set it in base.epochs")
        if path in seen:
            raise SpecError(f"{field}: {seen[path]} already sets {path}; keep one of the two")
        seen[path] = name
        if not param.is_choice:
            _check_range_type(field, path, annotation, param)
        values = param.choices if param.is_choice else [param.low, param.high]
        assert values is not None
        for value in values:
            try:
                apply_overrides(spec.base, {path: value})
            except ConfigError as e:
                raise SpecError(f"{field}: {value!r} is not a valid {path} ({e})") from e


def _check_range_type(field: str, path: str, annotation: Any, param: ParamSpec) -> None:
    """A range needs a number field; an int field needs whole-number bounds and step."""
    kind = _numeric_kind(annotation)
    if kind is None:
        raise SpecError(f"{field}: {path} is not a number field; list its values as choices")
    if kind == "int":
        bounds = [param.low, param.high] + ([param.step] if param.step is not None else [])
        if any(not float(b).is_integer() for b in bounds if b is not None):
            raise SpecError(f"{field}: {path} is an int field; low, high and step must be whole")


def _check_eta_min_below_lr(spec: StudySpec) -> None:
    """Every eta_min that can be sampled is below every lr that can be sampled."""
    eta, lr = _span(spec, "scheduler.eta_min"), _span(spec, "optimizer.lr")
    if eta.high < lr.low:
        return
    sampled = [s.field for s in (eta, lr) if s.field.startswith("search_space.")]
    field = sampled[0] if sampled else eta.field
    raise SpecError(
        f"{field}: {eta.high_label} ({eta.high:g}) must be below {lr.low_label} ({lr.low:g}): "
        "eta_min is the absolute lr the cosine anneals to, so every eta_min that can be "
        "sampled must be below every lr that can be sampled"
    )


def _check_t_max(spec: StudySpec) -> None:
    """T_max within [1, 2 × base.epochs] (TrainConfig itself enforces the 1)."""
    epochs, t_max = spec.base.epochs, _span(spec, "scheduler.T_max")
    if t_max.high > 2 * epochs:
        raise SpecError(
            f"{t_max.field}: {t_max.high_label} ({t_max.high:g}) must be at most 2 × base.epochs "
            f"({2 * epochs}); a longer cosine period never gets near eta_min"
        )


def _check_pruner(spec: StudySpec) -> None:
    """max_resource is base.epochs; the first rung comes before the last epoch."""
    pruner, epochs = spec.pruner, spec.base.epochs
    if pruner.max_resource is not None and pruner.max_resource != epochs:
        raise SpecError(
            f"pruner.max_resource ({pruner.max_resource}) must be base.epochs ({epochs}): "
            "Hyperband's max resource is the epochs a trial trains; leave it unset"
        )
    if pruner.kind != "none" and pruner.min_resource >= epochs:
        raise SpecError(
            f"pruner.min_resource ({pruner.min_resource}): the first rung is at epoch "
            f"{pruner.min_resource}, at or past the last epoch (base.epochs={epochs}), and a "
            "trial is never pruned at its last epoch; lower min_resource, or set "
            "pruner.kind: none to sweep without pruning"
        )


def _check_ranking(spec: StudySpec) -> None:
    """gap_source holdout needs a holdout split; a holdout rule needs gap_source holdout."""
    data = spec.base.data
    if spec.ranking.gap_source == "holdout" and not (data.holdout or data.holdout_fraction > 0):
        raise SpecError(
            "ranking.gap_source: holdout needs a holdout split; set base.data.holdout_fraction "
            "> 0 or list base.data.holdout, or use gap_source: train"
        )
    if spec.ranking.rule in ("holdout", "mean") and spec.ranking.gap_source != "holdout":
        raise SpecError(
            f"ranking.rule: {spec.ranking.rule} ranks by the holdout H-mean, but "
            "ranking.gap_source is train; use gap_source: holdout, or rule: score or val"
        )


def _check_baselines(spec: StudySpec) -> None:
    """Each baseline names every search-space parameter, with a value inside the space."""
    names = set(spec.search_space)
    for i, baseline in enumerate(spec.baselines):
        field = f"baselines[{i}]"
        extra = sorted(set(baseline) - names)
        if extra:
            raise SpecError(
                f"{field}: {extra} not in search_space (names: {', '.join(spec.search_space)})"
            )
        missing = sorted(names - set(baseline))
        if missing:
            raise SpecError(f"{field}: missing {missing}; a baseline sets every parameter")
        for name, value in baseline.items():
            param = spec.search_space[name]
            if not param.contains(value):
                raise SpecError(
                    f"{field}.{name}: {value!r} is outside the search space ({param.describe()})"
                )
        try:
            spec.train_config(baseline)
        except ConfigError as e:
            raise SpecError(f"{field}: {e}") from e


def _check_postprocess_search(spec: StudySpec) -> None:
    """Each range is a range (not choices) of valid values of its postprocess field."""
    for name, param in spec.postprocess_search.ranges().items():
        field, path = f"postprocess_search.{name}", f"postprocess.{name}"
        if param.is_choice:
            raise SpecError(f"{field}: give a range (low, high, step), not choices")
        _check_range_type(field, path, _field_annotation(path), param)
        for value in (param.low, param.high):
            try:
                apply_overrides(spec.base, {path: value})
            except ConfigError as e:
                raise SpecError(f"{field}: {value!r} is not a valid {path} ({e})") from e


def _t_max_warning(spec: StudySpec) -> str | None:
    """A warning when T_max can differ from the epochs trained, with the lr a run ends at."""
    epochs, t_max = spec.base.epochs, _span(spec, "scheduler.T_max")
    extremes = sorted({int(t_max.low), int(t_max.high)} - {epochs})
    if not extremes:
        return None
    # The largest lr and smallest eta_min show the widest miss.
    lr, eta = _span(spec, "optimizer.lr").high, _span(spec, "scheduler.eta_min").low
    endings = []
    for t in extremes:
        # The cosine schedule at epoch == epochs; past T_max it climbs back towards lr.
        end = eta + (lr - eta) * (1 + math.cos(math.pi * epochs / t)) / 2
        past = f" (past its minimum at epoch {t})" if t < epochs else ""
        endings.append(f"with T_max={t} a run ends at lr {end:.3g}{past}")
    values = f"{t_max.low:g}..{t_max.high:g}" if t_max.low != t_max.high else f"{t_max.low:g}"
    return (
        f"{t_max.field}: T_max can be {values} while base.epochs is {epochs}: "
        f"{'; '.join(endings)}, for lr {lr:g} and eta_min {eta:g}, instead of ending at eta_min"
    )


# ---- helpers ---------------------------------------------------------------------------


class _Span(NamedTuple):
    """The values one train-config number can take in a trial, and where they come from."""

    field: str  # search_space.<name> or base.<path>
    low_label: str
    high_label: str
    low: float
    high: float


def _span(spec: StudySpec, path: str) -> _Span:
    """Smallest and largest value ``path`` can take: sampled, or fixed in base."""
    for name, param in spec.search_space.items():
        if spec.param_path(name) == path:
            field = f"search_space.{name}"
            low, high = param.span()
            if param.is_choice:
                return _Span(
                    field, f"the smallest {name} choice", f"the largest {name} choice", low, high
                )
            return _Span(field, f"{name}.low", f"{name}.high", low, high)
    value = _base_value(spec, path)
    return _Span(f"base.{path}", f"base.{path}", f"base.{path}", value, value)


def _base_value(spec: StudySpec, path: str) -> float:
    """A number from the base config; T_max None means the epochs trained."""
    if path == "scheduler.T_max":
        return float(spec.base.t_max)
    node: Any = spec.base
    for part in path.split("."):
        node = getattr(node, part)
    return float(node)


def _sections(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every leaf field path of a config model."""
    for key, info in model.model_fields.items():
        if _is_section(info.annotation):
            yield from _sections(info.annotation, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_annotation(path: str) -> Any | None:
    """The type annotation of a TrainConfig leaf field, or None when there is none."""
    model: type[BaseModel] = TrainConfig
    *parents, leaf = path.split(".")
    for part in parents:
        info = model.model_fields.get(part)
        if info is None or not _is_section(info.annotation):
            return None
        model = info.annotation
    info = model.model_fields.get(leaf)
    if info is None or _is_section(info.annotation):
        return None
    return info.annotation


def _unknown_field_hint(name: str, path: str) -> str:
    """Why ``name`` is not a field, and which fields were probably meant."""
    leaves = list(_sections(TrainConfig))
    inside = [p for p in leaves if p.startswith(f"{path}.")]
    if inside:
        return f"{path!r} is a train-config section; name one of its fields: {', '.join(inside)}"
    matches = [p for p in leaves if p.endswith(f".{name}")]
    hint = f"; did you mean {' or '.join(matches)}?" if matches else ""
    return f"{path!r} is not a train-config field{hint}"


def _numeric_kind(annotation: Any) -> Literal["int", "float"] | None:
    """int for an int field (``int | None`` too), float for a float field, else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = {a for a in get_args(annotation) if a is not type(None)}
    else:
        args = {annotation}
    if args == {int}:
        return "int"
    if args in ({float}, {int, float}):
        return "float"
    return None


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
