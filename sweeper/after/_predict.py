"""``sweeper predict`` and ``sweeper evaluate``: a trial, a checkpoint or an ensemble of them
on a folder of images, in the original images' pixels.

What runs is a :class:`ModelSource`: a checkpoint file; a trial of a study (``--trial N``, or
the winner by the study's ranking rule); the fold or seed re-runs ``sweeper verify`` made of
one config (``--ensemble STUDY.verify``); or the top K trials (``--ensemble-top K``). An
ensemble averages its members' probability maps per image before one post-processing
(:class:`trainer_core.inference.Ensemble`). The post-processing is the trial's own: the
values ``tune-postprocess`` found when it ran on that trial (for an ensemble: on the config
its re-runs repeat, or on the top trial), else the config the checkpoint was trained with;
``--set postprocess.X=V`` overrides either. Checkpoint paths read from the study are checked
to stay inside the artifacts directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from pydantic import ValidationError

from storage import open_storage, resolve_url
from sweeper.after._postprocess import trial_checkpoint
from sweeper.after._trials import completed_trial
from sweeper.after._verify import source_study_name, verify_report
from sweeper.attrs import VERIFY_SOURCE_ATTR
from sweeper.define import StudySpec, load_study
from sweeper.errors import SpecError, StudyError
from sweeper.paths import DEFAULT_ARTIFACTS
from sweeper.rank import best_trial, rank_study
from sweeper.tuned_postprocess import tuned_by_trial
from trainer_core.config import PostprocessConfig, TrainConfig, format_validation_error
from trainer_core.config import parse_override as parse_config_override
from trainer_core.data.detection_files import FORMATS, Format, read_detections, write_detections
from trainer_core.data.image_files import list_images
from trainer_core.errors import ConfigError, DataError
from trainer_core.inference import (
    Ensemble,
    Predictions,
    evaluate_samples,
    load_member,
    predict_images,
)
from trainer_core.metrics import DetectionMetrics
from trainer_core.precision import resolve_device

__all__ = [
    "Evaluation",
    "ModelSource",
    "Models",
    "Prediction",
    "evaluate_folder",
    "predict_folder",
    "resolve_models",
]

ImageFn = Callable[[Path, bool], None]


@dataclass(frozen=True)
class ModelSource:
    """What to run, as the command line names it (exactly one of ``checkpoint``,
    ``ensemble``, ``study``; ``trial``/``best`` and ``ensemble_top`` refine it)."""

    study: str | None = None
    trial: int | None = None
    best: bool = False
    checkpoint: Path | None = None
    ensemble: str | None = None
    ensemble_top: int | None = None
    storage: str | None = None
    artifacts: Path = DEFAULT_ARTIFACTS
    overrides: tuple[str, ...] = ()
    """``postprocess.X=V`` settings on top of the chosen post-processing."""


@dataclass(frozen=True)
class Models:
    """The checkpoints to run, the post-processing to apply once, and what they are."""

    checkpoints: list[Path]
    post: PostprocessConfig
    metric_average: str
    what: str
    """One line: which model(s)."""
    post_from: str
    """One line: where the post-processing came from."""


def _check_source(source: ModelSource) -> None:
    """Exactly one way to name the model(s); the refinements only where they apply."""
    given = [
        name
        for name, on in (
            ("STUDY", source.study is not None),
            ("--checkpoint", source.checkpoint is not None),
            ("--ensemble", source.ensemble is not None),
        )
        if on
    ]
    if len(given) != 1:
        raise SpecError(
            "name the model once: STUDY [--trial N | --best | --ensemble-top K], "
            "--checkpoint FILE, or --ensemble STUDY.verify"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    if source.trial is not None and source.best:
        raise SpecError("--trial and --best: give one (--best is the default)")
    if source.ensemble_top is not None:
        if source.study is None:
            raise SpecError("--ensemble-top K needs STUDY: the study whose top K to average")
        if source.trial is not None or source.best:
            raise SpecError("--ensemble-top K averages the top K; drop --trial/--best")
        if source.ensemble_top < 1:
            raise SpecError(f"--ensemble-top {source.ensemble_top}: must be 1 or more")
    if source.checkpoint is not None and (source.trial is not None or source.best):
        raise SpecError("--checkpoint FILE runs that file; --trial/--best choose from a study")
    if source.ensemble is not None and source.best:
        raise SpecError("--ensemble: --trial N picks whose re-runs to average; --best does not")


def _postprocess(
    base: PostprocessConfig, overrides: dict[str, Any], where: str
) -> PostprocessConfig:
    """``base`` with dotted ``postprocess.X`` overrides, validated."""
    if not overrides:
        return base
    values = base.model_dump() | {k.removeprefix("postprocess."): v for k, v in overrides.items()}
    try:
        return PostprocessConfig.model_validate(values)
    except ValidationError as e:
        raise ConfigError(f"{where}: {format_validation_error(e, 'postprocess')}") from e


def _set_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    parsed = dict(parse_config_override(item) for item in items)
    for key in parsed:
        if not key.startswith("postprocess."):
            raise SpecError(
                f"--set {key}: only postprocess.X can be set here (thresh, box_thresh, "
                "unclip_ratio, max_candidates, min_size, score_mode, output)"
            )
    return parsed


def _config(checkpoint: Path) -> TrainConfig:
    return load_member(checkpoint)[1]


def _tuned(
    study: optuna.Study, number: int, base: PostprocessConfig
) -> tuple[PostprocessConfig, str]:
    """Trial ``number``'s tuned post-processing over ``base``, or ``base``; and which."""
    tuned = tuned_by_trial(study.user_attrs).get(number)
    if tuned is None:
        return base, f"trial {number}'s config"
    where = f"trial {number}'s tuned values ({tuned.search_study})"
    return _postprocess(base, tuned.overrides(), where), where


def _from_study(
    source: ModelSource, study: optuna.Study, spec: StudySpec
) -> tuple[list[Path], int, str]:
    """Checkpoints of ``study`` the source names, the trial whose post-processing applies,
    and what they are."""
    artifacts = source.artifacts
    if source.ensemble_top is not None:
        ranked = rank_study(study, spec).completed[: source.ensemble_top]
        if not ranked:
            raise StudyError(f"study {study.study_name!r} has no completed trial yet")
        trials = [completed_trial(study, r.number, "predict with") for r in ranked]
        numbers = ", ".join(str(t.number) for t in trials)
        what = f"ensemble of the top {len(trials)} trials of {study.study_name} ({numbers})"
        return [trial_checkpoint(study, t, artifacts) for t in trials], trials[0].number, what
    if source.trial is not None:
        trial = completed_trial(study, source.trial, "predict with")
        what = f"trial {trial.number} of {study.study_name}"
    else:
        trial = best_trial(study, spec)
        what = f"trial {trial.number} of {study.study_name}, the best by {spec.ranking.rule}"
    return [trial_checkpoint(study, trial, artifacts)], trial.number, what


def _from_verify(
    source: ModelSource, verify: optuna.Study, spec: StudySpec
) -> tuple[list[Path], int, str]:
    """The completed re-runs of one config in a verify study (``source.trial``, else the
    config that won by mean score)."""
    if source_study_name(verify) is None:
        raise StudyError(
            f"--ensemble {verify.study_name}: not a verify study (sweeper verify makes "
            "STUDY.verify); for a sweep's best trials use --ensemble-top K STUDY"
        )
    report = verify_report(verify, spec)
    number = source.trial
    if number is None:
        if report.winner is None:
            raise StudyError(f"study {verify.study_name!r} has no completed re-run yet")
        number = report.winner.source
    runs = [
        t
        for t in verify.get_trials(deepcopy=False)
        if t.user_attrs.get(VERIFY_SOURCE_ATTR) == number and t.state == TrialState.COMPLETE
    ]
    if not runs:
        configs = ", ".join(str(c.source) for c in report.configs) or "none"
        raise StudyError(
            f"--trial {number}: study {verify.study_name!r} has no completed re-run of it "
            f"(configs verified: {configs})"
        )
    what = (
        f"ensemble of the {len(runs)} re-runs ({report.varied}) of trial {number} of "
        f"{report.source}"
    )
    return [trial_checkpoint(verify, t, source.artifacts) for t in runs], number, what


def resolve_models(source: ModelSource) -> Models:
    """The checkpoints and post-processing ``source`` names.

    Raises:
        SpecError: the options do not name one model (or ensemble), or a bad ``--set``.
        StudyError: an unknown study or trial, a trial not completed, or a checkpoint that is
            missing or would lie outside the artifacts directory.
        DataError: a checkpoint file that is not one.
    """
    _check_source(source)
    overrides = _set_overrides(source.overrides)
    if source.checkpoint is not None:
        cfg = _config(source.checkpoint)
        post = _postprocess(cfg.postprocess, overrides, "--set")
        from_ = "the checkpoint's config" + (" with --set" if overrides else "")
        return Models([source.checkpoint], post, cfg.metric_average, str(source.checkpoint), from_)
    storage = open_storage(resolve_url(source.storage), create=False)
    if source.ensemble is not None:
        study, spec = load_study(source.ensemble, storage)
        checkpoints, number, what = _from_verify(source, study, spec)
        sweep, _ = load_study(source_study_name(study) or "", storage)
    else:
        assert source.study is not None
        sweep, spec = load_study(source.study, storage)
        checkpoints, number, what = _from_study(source, sweep, spec)
    cfg = _config(checkpoints[0])
    post, from_ = _tuned(sweep, number, cfg.postprocess)
    post = _postprocess(post, overrides, "--set")
    if overrides:
        from_ += " with --set"
    return Models(checkpoints, post, cfg.metric_average, what, from_)


def _ensemble(models: Models, device: str) -> Ensemble:
    return Ensemble([load_member(p)[0] for p in models.checkpoints], resolve_device(device))


@dataclass
class Prediction:
    """What ``predict`` did."""

    models: Models
    run: Predictions
    output: Path
    fmt: str
    device: str = ""
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _check_format(fmt: str, post: PostprocessConfig) -> None:
    if fmt not in FORMATS:
        raise SpecError(f"--format {fmt!r}: use {', '.join(FORMATS)}")
    if fmt == "icdar" and post.output != "quad":
        raise SpecError(
            "--format icdar holds quadrilaterals, but postprocess.output is polygon; "
            "use ufo or csv, or --set postprocess.output=quad"
        )


def predict_folder(
    source: ModelSource,
    images: Path,
    output: Path,
    *,
    fmt: Format = "ufo",
    device: str = "auto",
    batch: int = 1,
    on_start: Callable[[int], None] | None = None,
    on_image: ImageFn | None = None,
) -> Prediction:
    """Detect text on every image of ``images`` and write the detections to ``output``.

    Args:
        source: the model(s) and their post-processing.
        images: a folder of jpg/png images (sorted; subfolders not read).
        output: a file for ufo and csv, a folder for icdar; written whole or not at all.
        fmt: ``ufo``, ``icdar`` or ``csv``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        batch: images per forward pass.
        on_start: called with the number of images before the first.
        on_image: called after each image (progress).

    Raises:
        SpecError, StudyError, DataError, ConfigError: bad input, one line naming it.

    Example:
        >>> source = ModelSource(study="demo")
        >>> done = predict_folder(source, Path("test"), Path("p.json"))  # doctest: +SKIP
    """
    if batch < 1:
        raise SpecError(f"--batch {batch}: must be 1 or more")
    paths = list_images(images)
    models = resolve_models(source)
    _check_format(fmt, models.post)
    ensemble = _ensemble(models, device)
    if on_start is not None:
        on_start(len(paths))
    run = predict_images(ensemble, paths, models.post, batch_size=batch, on_image=on_image)
    write_detections(output, run.by_name(), fmt)
    return Prediction(models, run, output, fmt, str(ensemble.device), run.skipped)


@dataclass
class Evaluation:
    """What ``evaluate`` measured."""

    models: Models
    metrics: DetectionMetrics
    run: Predictions
    images: int


def evaluate_folder(
    source: ModelSource,
    images: Path,
    annotations: Path,
    *,
    fmt: Format = "ufo",
    device: str = "auto",
    batch: int = 1,
    on_start: Callable[[int], None] | None = None,
    on_image: ImageFn | None = None,
) -> Evaluation:
    """Precision, recall and H-mean of the model(s) on the labelled images, in the
    annotations' pixel grid, averaged as the trial's config says (``metric_average``).

    Args:
        annotations: a UFO JSON or CSV file, or a folder of ICDAR per-image files.
        fmt: the annotations' format.

    Raises:
        SpecError, StudyError, DataError, ConfigError: bad input, one line naming it.
    """
    if fmt not in FORMATS:
        raise SpecError(f"--format {fmt!r}: use {', '.join(FORMATS)}")
    if batch < 1:
        raise SpecError(f"--batch {batch}: must be 1 or more")
    if not Path(images).is_dir():
        raise DataError(f"--images {images}: not a folder of images")
    if not Path(annotations).exists():
        raise DataError(f"--annotations {annotations}: no such file or folder")
    samples = read_detections(annotations, fmt, images)
    if not samples:
        raise DataError(f"--annotations {annotations}: no annotated image found in {images}")
    models = resolve_models(source)
    ensemble = _ensemble(models, device)
    if on_start is not None:
        on_start(len(samples))
    metrics, run = evaluate_samples(
        ensemble,
        samples,
        models.post,
        average=models.metric_average,  # type: ignore[arg-type]
        batch_size=batch,
        on_image=on_image,
    )
    return Evaluation(models, metrics, run, len(samples))
