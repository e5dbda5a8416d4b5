"""``sweeper tune-postprocess``: search a trial's post-processing thresholds, no retraining.

The trial's ``best.pt`` runs once over validation and the gap split; the probability maps
are cached beside it (:func:`trainer_core.prob_maps.cache_prob_maps`) and reused by the next
call. An Optuna study of its own, in the same storage and named after the trial
(``STUDY.trial-N.postprocess``, so the dashboard shows it), searches ``thresh``,
``box_thresh``, ``unclip_ratio`` and ``max_candidates`` within the spec's
``postprocess_search`` ranges on the cached maps alone, maximizing val H-mean. The gap
split's H-mean is reported before and after: a setting that only fits val shows up as a
val gain without a gap-split gain. The result is stored on the trial's study
(:mod:`sweeper.tuned_postprocess`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from storage import add_finished_trials, retry_root, storage_of
from sweeper.attrs import POSTPROCESS_OF_ATTR, TUNED_ATTR
from sweeper.define import PostprocessSearchSpec, StudySpec, study_key, trial_config
from sweeper.errors import SpecError, StudyError
from sweeper.paths import checkpoints_dir, recorded_folder
from sweeper.rank import rank_study
from sweeper.trial_result import TrialResult
from sweeper.tuned_postprocess import TunedPostprocess, tuned_attr_key
from trainer_core.config import PostprocessConfig
from trainer_core.prob_maps import CachedMaps, MapScorer, cache_prob_maps


def search_study_name(study_name: str, number: int) -> str:
    """The search study of trial ``number``: ``STUDY.trial-N.postprocess``."""
    return f"{study_name}.trial-{number}.postprocess"


def pick_trials(
    study: optuna.Study, spec: StudySpec, trial: int | None = None, top: int | None = None
) -> list[int]:
    """The trial numbers to tune: ``trial``, or the ``top`` completed by the ranking rule.

    Raises:
        SpecError: both or neither given, or ``top`` below 1.
        StudyError: no completed trial.
    """
    if (trial is None) == (top is None):
        raise SpecError("give --trial N or --top K (one of them)")
    if trial is not None:
        return [trial]
    assert top is not None
    if top < 1:
        raise SpecError(f"--top {top}: must be 1 or more")
    ranked = rank_study(study, spec).completed
    if not ranked:
        raise StudyError(f"study {study.study_name!r} has no completed trial to tune yet")
    return [r.number for r in ranked[:top]]


def _finished_trial(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == number), None)
    if found is None:
        raise StudyError(
            f"study {study.study_name!r} has no trial {number} (trials 0..{len(trials) - 1})"
        )
    if found.state != TrialState.COMPLETE or not TrialResult.from_attrs(found.user_attrs).scored:
        raise StudyError(
            f"trial {number} of study {study.study_name!r} is {found.state.name.lower()}, not a "
            "completed trial with a score; tune a completed one (sweeper rank lists them)"
        )
    return found


def trial_checkpoint(study: optuna.Study, trial: FrozenTrial, artifacts: Path) -> Path:
    """The ``best.pt`` of a finished trial under ``artifacts``.

    Raises:
        StudyError: it is not there (another --artifacts, or retention removed it).
    """
    recorded = TrialResult.from_attrs(trial.user_attrs).checkpoint_dir
    if recorded is not None:
        try:
            folder = recorded_folder(recorded, artifacts)
        except StudyError as e:
            raise StudyError(f"trial {trial.number}: {e}") from e
    else:
        key = study_key(study.study_name, storage_of(study))
        folder = checkpoints_dir(artifacts, key) / f"trial-{retry_root(trial)}"
    best = folder / "best.pt"
    if not best.is_file():
        raise StudyError(
            f"trial {trial.number}: no checkpoint at {best}; pass the workers' --artifacts "
            "(the checkpoint may also have been removed by the spec's retention)"
        )
    return best


def _suggest(trial: optuna.Trial, ranges: PostprocessSearchSpec) -> dict[str, float | int]:
    params: dict[str, float | int] = {}
    for name, p in ranges.ranges().items():
        assert p.low is not None and p.high is not None  # ranges, checked by the spec
        if name == "max_candidates":
            step = 1 if p.step is None else int(p.step)
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), step=step, log=p.log)
        else:
            params[name] = trial.suggest_float(
                name, float(p.low), float(p.high), step=p.step, log=p.log
            )
    return params


def _search_study(study: optuna.Study, number: int) -> optuna.Study:
    """The trial's search study in the sweep's storage (created on the first call)."""
    search = optuna.create_study(
        storage=storage_of(study),
        study_name=search_study_name(study.study_name, number),
        direction="maximize",
        load_if_exists=True,
    )
    if POSTPROCESS_OF_ATTR not in search.user_attrs:
        search.set_user_attr(POSTPROCESS_OF_ATTR, {"study": study.study_name, "trial": number})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            search.set_metric_names(["val H-mean"])
    return search


def run_search(
    search: optuna.Study,
    ranges: PostprocessSearchSpec,
    scorer: MapScorer,
    own: PostprocessConfig,
    n_trials: int,
    on_trial: Callable[[int], None] | None = None,
) -> FrozenTrial:
    """``n_trials`` more trials of ``search``, each scoring a setting on ``scorer``'s maps
    (the other post-processing fields as in ``own``); return the best trial so far.

    TPE runs on an in-memory copy of ``search`` (its finished trials first, so a second
    call continues the first); the new trials are then added to ``search`` in one
    transaction (:func:`storage.add_finished_trials`). A trial costs a few milliseconds of
    scoring, and the ~7 commits ``optimize`` makes per trial on a SQL storage would cost
    more than the search. The first search of a trial starts with ``own``'s values when
    they lie inside the ranges.
    """
    past = search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    seed = None if ranges.seed is None else ranges.seed + len(past)
    local = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True)
    )
    local.add_trials(past)
    first = {name: getattr(own, name) for name in ranges.ranges()}
    if not past and all(ranges.ranges()[n].contains(v) for n, v in first.items()):
        local.enqueue_trial(first)

    def objective(t: optuna.Trial) -> float:
        metrics = scorer.metrics(own.model_copy(update=_suggest(t, ranges)))
        # The search's trials show val P and R in the dashboard as the sweep's trials do.
        shown = TrialResult(val_precision=metrics.precision, val_recall=metrics.recall)
        for key, value in shown.to_attrs().items():
            t.set_user_attr(key, value)
        return metrics.hmean

    callbacks = [] if on_trial is None else [lambda _, t: on_trial(t.number + 1 - len(past))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # enqueue's fixed params
        local.optimize(objective, n_trials=n_trials, callbacks=callbacks)
    new = local.get_trials(deepcopy=False)[len(past) :]
    add_finished_trials(search, new)
    return max((*past, *new), key=lambda t: t.value if t.value is not None else -1.0)


def tune_postprocess(
    study: optuna.Study,
    spec: StudySpec,
    number: int,
    *,
    artifacts: Path,
    n_trials: int | None = None,
    data_root: Path | None = None,
    device: str | None = None,
    on_trial: Callable[[int], None] | None = None,
) -> tuple[TunedPostprocess, CachedMaps]:
    """Search trial ``number``'s post-processing on its cached maps; store the best.

    Args:
        study: the sweep (``load_study``).
        spec: its spec (ranges in ``postprocess_search``).
        number: a completed trial.
        artifacts: the workers' ``--artifacts`` (where its checkpoint is).
        n_trials: search trials (default ``postprocess_search.n_trials``).
        data_root: this node's mount of the spec's relative data paths.
        device: where the one inference pass runs (default: the trial's config's).
        on_trial: called after each search trial with the number done.

    Returns:
        The stored result and the maps it was found on.

    Raises:
        StudyError: no such completed trial, or no checkpoint for it.
        SpecError: ``n_trials`` below 1.

    Example:
        >>> tuned, _ = tune_postprocess(study, spec, 3, artifacts=Path("art"))  # doctest: +SKIP
        >>> tuned.params["thresh"], tuned.val_after  # doctest: +SKIP
    """
    n_trials = spec.postprocess_search.n_trials if n_trials is None else n_trials
    if n_trials < 1:
        raise SpecError(f"--n-trials {n_trials}: must be 1 or more")
    trial = _finished_trial(study, number)
    best_pt = trial_checkpoint(study, trial, artifacts)
    cfg = trial_config(spec, trial.params, data_root, device)
    cached = cache_prob_maps(cfg, best_pt)

    own = cfg.postprocess
    floor = min(spec.postprocess_search.box_thresh.span()[0], own.box_thresh)
    val = MapScorer(cached.val, cfg.metric_average, floor)
    gap = MapScorer(cached.gap, cfg.metric_average, floor)
    search = _search_study(study, number)
    best = run_search(search, spec.postprocess_search, val, own, n_trials, on_trial)
    after = own.model_copy(update=best.params)
    tuned = TunedPostprocess(
        trial=number,
        params=dict(best.params),
        val_before=val.metrics(own).hmean,
        val_after=float(best.value),
        gap_split=cached.gap_split,
        gap_before=gap.metrics(own).hmean,
        gap_after=gap.metrics(after).hmean,
        search_study=search.study_name,
        search_trials=len(search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
        maps=str(cached.path),
    )
    study.set_user_attr(tuned_attr_key(number), tuned.to_attr())
    search.set_user_attr(TUNED_ATTR, tuned.to_attr())
    return tuned, cached
