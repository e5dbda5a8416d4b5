"""Ask -> config: a trial's parameters sampled from the spec, and the TrainConfig they make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from sweeper.define._spec import StudySpec
from trainer_core.config import TrainConfig


def suggest_params(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Sample every search-space parameter of ``spec`` for ``trial`` (name -> value).

    Enqueued trials (the baselines) get their fixed values back.
    """
    params: dict[str, Any] = {}
    for name, p in spec.search_space.items():
        if p.choices is not None:
            params[name] = trial.suggest_categorical(name, p.choices)
        elif spec.is_int(name):
            assert p.low is not None and p.high is not None  # a range, checked by ParamSpec
            step = 1 if p.step is None else int(p.step)
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), step=step, log=p.log)
        else:
            assert p.low is not None and p.high is not None
            params[name] = trial.suggest_float(
                name, float(p.low), float(p.high), step=p.step, log=p.log
            )
    return params


def trial_config(
    spec: StudySpec,
    params: dict[str, Any],
    data_root: Path | None = None,
    device: str | None = None,
) -> TrainConfig:
    """The spec's base config with ``params`` set, data and weight files under this node's
    root (``model.weights`` and ``model.init_checkpoint`` live on the data mount too)."""
    cfg = spec.train_config(params)
    data = cfg.data
    if data_root is not None:
        data = data.with_root(data_root)
    if spec.ranking.gap_source == "train":
        # The gap is measured on training images; a holdout would go unused.
        data = data.model_copy(update={"holdout": None, "holdout_fraction": 0.0})
    update: dict[str, Any] = {"data": data}
    if data_root is not None:
        update["model"] = cfg.model.with_root(data_root)
    if device is not None:
        update["device"] = device
    return cfg.model_copy(update=update)
