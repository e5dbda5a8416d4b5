"""The rules of a study spec that span its sections, one function each.

:class:`~sweeper.define._spec.StudySpec`'s validator runs them through :func:`check_rules`;
each fails with a :class:`~sweeper.errors.SpecError` that names the field:

- every search-space name is a train-config field, set by one name only, and every bound
  and choice is a valid value of it (:class:`~sweeper.define._spec.ParamSpec` itself checks
  low < high, and low > 0 on a log scale);
- ``eta_min`` is absolute (the lr the cosine anneals down to, not a fraction of lr), so
  every eta_min that can be sampled must be below every lr that can be sampled:
  ``eta_min.high < lr.low``, with a fixed base value standing in for an unsampled one;
- ``T_max`` stays within [1, 2 × base.epochs] (a T_max other than the epochs trained
  only warns, see :func:`t_max_warning`);
- pruning: ``max_resource`` is ``base.epochs`` (one report per epoch), and the first rung
  (``min_resource``) comes before the last epoch, where a trial is never pruned;
- ``ranking.gap_source: holdout`` needs a holdout split in ``base.data``;
- every baseline gives exactly the search-space names, each value inside the space.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from sweeper.errors import SpecError
from trainer_core.config import apply_overrides
from trainer_core.config_paths import field_annotation, numeric_kind, unknown_field_hint
from trainer_core.errors import ConfigError

if TYPE_CHECKING:
    # Only for annotations: the models run these rules, so importing them here would loop.
    from sweeper.define._spec import ParamSpec, StudySpec


def check_rules(spec: StudySpec) -> None:
    """Run every rule on ``spec``, in order; the first broken one raises :class:`SpecError`."""
    _check_search_space(spec)
    _check_eta_min_below_lr(spec)
    _check_t_max(spec)
    _check_pruner(spec)
    _check_ranking(spec)
    _check_baselines(spec)
    _check_postprocess_search(spec)


def _check_search_space(spec: StudySpec) -> None:
    """Names resolve to TrainConfig fields, once each; bounds and choices are valid values."""
    seen: dict[str, str] = {}
    for name, param in spec.search_space.items():
        path = spec.param_path(name)
        field = f"search_space.{name}"
        if field_annotation(path) is None:
            raise SpecError(f"{field}: {unknown_field_hint(path)}")
        if path == "epochs":
            raise SpecError(f"{field}: epochs is Hyperband's resource; set it in base.epochs")
        if path in seen:
            raise SpecError(f"{field}: {seen[path]} already sets {path}; keep one of the two")
        seen[path] = name
        if not param.is_choice:
            _check_range_type(field, path, param)
        values = param.choices if param.is_choice else [param.low, param.high]
        assert values is not None
        for value in values:
            try:
                apply_overrides(spec.base, {path: value})
            except ConfigError as e:
                raise SpecError(f"{field}: {value!r} is not a valid {path} ({e})") from e


def _check_range_type(field: str, path: str, param: ParamSpec) -> None:
    """A range needs a number field; an int field needs whole-number bounds and step."""
    kind = numeric_kind(path)
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
    if spec.pruner_kind != "none" and pruner.min_resource >= epochs:
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
        _check_range_type(field, path, param)
        for value in (param.low, param.high):
            try:
                apply_overrides(spec.base, {path: value})
            except ConfigError as e:
                raise SpecError(f"{field}: {value!r} is not a valid {path} ({e})") from e


def t_max_warning(spec: StudySpec) -> str | None:
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
