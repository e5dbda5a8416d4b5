"""``sweeper verify``: re-run the top-K configs over other seeds or folds, to see luck.

A sweep's winner won once. Verifying enqueues its config (and the next K-1 by the study's
ranking rule, :func:`sweeper.rank._ranking.rank_study`) again into a linked study, ``STUDY.verify``:
each with ``--seeds S`` other seeds, or on each of ``--folds N`` folds of the non-holdout
images (``data.n_folds``/``data.fold``). The linked study stores the sweep's spec with no
pruning and a budget of exactly its re-runs, so the same ``sweeper worker --study
STUDY.verify`` runs them on any node. A re-run carries its seed or fold as config overrides
(:data:`sweeper.attrs.CONFIG_OVERRIDES_ATTR`) and the number of the trial it repeats;
verifying again enqueues only the (config, seed or fold) pairs not already there.

:func:`verify_report` groups the re-runs by config: mean and standard deviation of val,
gap-split H-mean and score beside the original trial's figures, the winner by mean score,
and a flag where the original score lies outside its re-runs' range (``lucky`` above it,
``unlucky`` below).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage import retried_numbers, retry_root, storage_of
from sweeper.attrs import CONFIG_OVERRIDES_ATTR, SPEC_ATTR, VERIFY_OF_ATTR, VERIFY_SOURCE_ATTR
from sweeper.define import StudySpec, create_study, load_study, parse_spec
from sweeper.errors import SpecError, StudyError
from sweeper.rank import rank_study
from sweeper.trial_result import TrialResult

DEFAULT_SEEDS = 3


def verify_study_name(name: str) -> str:
    """``STUDY.verify``."""
    return f"{name}.verify"


def source_study_name(verify: optuna.Study) -> str | None:
    """The sweep a verify study verifies (None: not a verify study)."""
    source = verify.user_attrs.get(VERIFY_OF_ATTR)
    return source if isinstance(source, str) else None


@dataclass(frozen=True)
class Enqueued:
    """What one ``verify`` call did."""

    study: str
    configs: list[int]
    """The sweep's trials verified, best first."""
    added: int
    already: int
    """Re-runs that were already in the verify study (not enqueued again)."""


def _runs(spec: StudySpec, params: dict[str, Any], seeds: int | None, folds: int | None):
    """The config overrides of each re-run of one config."""
    if folds is not None:
        return [{"data.n_folds": folds, "data.fold": k} for k in range(folds)]
    seed = spec.train_config(params).seed
    return [{"seed": seed + k} for k in range(1, (seeds or DEFAULT_SEEDS) + 1)]


def _check(spec: StudySpec, top: int, seeds: int | None, folds: int | None) -> None:
    if top < 1:
        raise SpecError(f"--top {top}: must be 1 or more")
    if seeds is not None and folds is not None:
        raise SpecError("--seeds and --folds: give one (re-runs vary the seed or the fold)")
    if seeds is not None and seeds < 1:
        raise SpecError(f"--seeds {seeds}: must be 1 or more")
    if folds is not None:
        if folds < 2:
            raise SpecError(f"--folds {folds}: must be 2 or more")
        data = spec.base.data
        if data.train is not None or data.val is not None:
            raise SpecError(
                f"--folds {folds}: the spec lists base.data.train or base.data.val; folds "
                "choose train and val themselves, so those lists must be unset"
            )


def _key(params: dict[str, Any], overrides: dict[str, Any]) -> str:
    return json.dumps([params, overrides], sort_keys=True)


def _verify_spec(spec: StudySpec, name: str, n_trials: int) -> StudySpec:
    """The sweep's spec for its re-runs: no pruning, no baselines, exactly ``n_trials``."""
    data = spec.model_dump(mode="json")
    data |= {
        "name": name,
        "pruner": {"kind": "none"},
        "baselines": [],
        "budget": {"n_trials": max(1, n_trials), "timeout_s": None},
    }
    return parse_spec(data, source=f"verify spec of {spec.name}")


def enqueue_verify(
    study: optuna.Study,
    spec: StudySpec,
    *,
    top: int,
    seeds: int | None = None,
    folds: int | None = None,
) -> Enqueued:
    """Enqueue re-runs of the top ``top`` configs into ``STUDY.verify`` (made if needed).

    Args:
        study: the sweep (``load_study``).
        spec: its spec.
        top: how many of the best completed trials (by ``rank_study``) to verify.
        seeds: re-runs with this many other seeds (the config's seed + 1, + 2, ...);
            the default when ``folds`` is not given: 3.
        folds: instead, one re-run on each of this many folds of the non-holdout images.

    Raises:
        SpecError: bad numbers, both ``seeds`` and ``folds``, or folds with explicit
            train/val lists.
        StudyError: the sweep has no completed trial, or is itself a verify study.

    Example:
        >>> enqueue_verify(*load_study("demo", open_storage()), top=3)  # doctest: +SKIP
    """
    _check(spec, top, seeds, folds)
    if source_study_name(study) is not None:
        raise StudyError(f"study {study.study_name!r} is a verify study; verify its sweep instead")
    ranked = rank_study(study, spec).completed[:top]
    if not ranked:
        raise StudyError(f"study {study.study_name!r} has no completed trial to verify yet")
    planned = [(r.number, r.params, o) for r in ranked for o in _runs(spec, r.params, seeds, folds)]
    storage = storage_of(study)
    name = verify_study_name(study.study_name)
    try:
        verify, _ = load_study(name, storage)
    except StudyError:
        verify = None
    existing = [] if verify is None else verify.get_trials(deepcopy=False)
    originals = {t.number: t for t in study.get_trials(deepcopy=False)}
    seen = {
        _key(originals[n].params, t.user_attrs.get(CONFIG_OVERRIDES_ATTR) or {})
        for t in existing
        if isinstance(n := t.user_attrs.get(VERIFY_SOURCE_ATTR), int) and n in originals
    }
    new = []
    for number, params, overrides in planned:  # two trials of one config run it once
        if (key := _key(params, overrides)) not in seen:
            seen.add(key)
            new.append((number, params, overrides))
    total = len({retry_root(t) for t in existing})  # a retried re-run counts once
    verify_spec = _verify_spec(spec, name, total + len(new))
    if verify is None:
        verify = create_study(verify_spec, storage)
        verify.set_user_attr(VERIFY_OF_ATTR, study.study_name)
    elif new:
        # The budget grows by the new re-runs, so workers run exactly those.
        verify.set_user_attr(SPEC_ATTR, verify_spec.model_dump(mode="json"))
    for number, params, overrides in new:
        verify.enqueue_trial(
            params,
            user_attrs={VERIFY_SOURCE_ATTR: number, CONFIG_OVERRIDES_ATTR: overrides},
        )
    return Enqueued(name, [r.number for r in ranked], len(new), len(planned) - len(new))


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation of one figure over the re-runs (None: none)."""

    mean: float | None
    std: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            return cls(None, None, None, None)
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        return cls(mean, math.sqrt(var), min(values), max(values))


@dataclass(frozen=True)
class VerifiedConfig:
    """One verified config: its re-runs' spread beside the original trial's figures."""

    source: int
    params: dict[str, Any]
    runs: int
    pending: int
    failed: int
    val: Spread
    gap: Spread
    score: Spread
    original_val: float
    original_gap: float
    original_score: float
    flag: str | None
    """``lucky``: the original score is above every re-run's; ``unlucky``: below."""


@dataclass(frozen=True)
class VerifyReport:
    """The verified configs, best mean score first, and how the re-runs vary."""

    study: str
    source: str
    gap_split: str
    varied: str
    configs: list[VerifiedConfig]

    @property
    def winner(self) -> VerifiedConfig | None:
        done = [c for c in self.configs if c.score.mean is not None]
        return done[0] if done else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "study": self.study,
                "source": self.source,
                "gap_split": self.gap_split,
                "varied": self.varied,
                "winner": None if self.winner is None else self.winner.source,
                "configs": [asdict(c) for c in self.configs],
            },
            indent=2,
        )


def _flag(original: float, score: Spread, runs: int) -> str | None:
    if runs < 2 or score.low is None or score.high is None:
        return None
    if original > score.high:
        return "lucky"
    if original < score.low:
        return "unlucky"
    return None


def _varied(trials: list[FrozenTrial]) -> str:
    keys = {k for t in trials for k in (t.user_attrs.get(CONFIG_OVERRIDES_ATTR) or {})}
    return "folds" if "data.fold" in keys else "seeds"


def verify_report(verify: optuna.Study, spec: StudySpec) -> VerifyReport:
    """Group a verify study's re-runs by the trial they repeat.

    Scores are recomputed with the spec's ranking penalty and tolerance, for the re-runs and
    the originals alike.

    Raises:
        StudyError: not a verify study, or its sweep is gone.
    """
    source_name = source_study_name(verify)
    if source_name is None:
        raise StudyError(f"study {verify.study_name!r} is not a verify study")
    source, _ = load_study(source_name, storage_of(verify))
    originals = {t.number: t for t in source.get_trials(deepcopy=False)}
    trials = verify.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    r = spec.ranking
    groups: dict[int, list[FrozenTrial]] = {}
    for t in trials:
        number = t.user_attrs.get(VERIFY_SOURCE_ATTR)
        if isinstance(number, int):
            groups.setdefault(number, []).append(t)
    configs = []
    for number, runs in groups.items():
        done = [
            result
            for t in runs
            if t.state == TrialState.COMPLETE
            and (result := TrialResult.from_attrs(t.user_attrs)).scored
        ]
        o = TrialResult.from_attrs(originals[number].user_attrs)
        original = o.rescored(r.penalty, r.tolerance)
        score = Spread.of([d.rescored(r.penalty, r.tolerance) for d in done])
        configs.append(
            VerifiedConfig(
                source=number,
                params=dict(originals[number].params),
                runs=len(done),
                pending=sum(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in runs),
                failed=sum(t.state == TrialState.FAIL and t.number not in retried for t in runs),
                val=Spread.of([d.val_hmean for d in done]),
                gap=Spread.of([d.gap_hmean for d in done]),
                score=score,
                original_val=o.val_hmean,
                original_gap=o.gap_hmean,
                original_score=original,
                flag=_flag(original, score, len(done)),
            )
        )
    configs.sort(key=lambda c: (c.score.mean is not None, c.score.mean or 0.0), reverse=True)
    return VerifyReport(verify.study_name, source_name, r.gap_source, _varied(trials), configs)
