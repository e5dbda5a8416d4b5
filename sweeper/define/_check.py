"""``sweeper check`` (and create-study's check): catch, where a spec enters, what every trial
would fail on.

Every backbone the spec can train is built (architecture only: no weights are downloaded);
when the data is reachable from here (``--data-root``, or the spec's paths from the current
directory) the annotations are read and split as a worker would, and a sample of images is
decoded. A problem raises the same one-line errors a trial would record (ConfigError,
DataError), before anything is stored.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sweeper.define._spec import StudySpec
from sweeper.define._trial_config import trial_config
from trainer_core.config import ModelConfig, TrainConfig
from trainer_core.data import make_splits
from trainer_core.data.dataset import load_image
from trainer_core.errors import DataError
from trainer_core.model import build_model

log = logging.getLogger(__name__)


def check_spec(spec: StudySpec, data_root: Path | None = None, images: int = 8) -> list[str]:
    """Check what can be checked here; one line per thing checked.

    Args:
        spec: a validated spec.
        data_root: where the spec's relative data paths are mounted; None: the current
            directory, and data that is not there is skipped (said in the result).
        images: how many images, spread over the dataset, to decode.

    Raises:
        ConfigError: a backbone that cannot be built, a weights file that cannot be loaded.
        DataError: no such data root, unreadable annotations, an empty split or one without
            a usable box, an image that does not decode.

    Example:
        >>> check_spec(load_spec("studies/demo.yaml"), Path("/data"))  # doctest: +SKIP
        ['backbone mobilenetv3_small_050 builds (1.1M parameters)', 'data: 40 images ...']
    """
    if data_root is not None and not data_root.is_dir():
        raise DataError(f"--data-root {data_root}: not a folder")
    cfg = trial_config(spec, {}, data_root)
    reachable = data_root is not None or Path(cfg.data.image_root).exists()
    lines = [_check_model(model, reachable) for model in _models(spec, cfg)]
    if not reachable:
        lines.append(
            f"data: not checked ({cfg.data.image_root} is not here; pass --data-root where "
            "the data is mounted)"
        )
        return lines
    lines.append(_check_data(cfg, images))
    return lines


def _models(spec: StudySpec, cfg: TrainConfig) -> list[ModelConfig]:
    """The model sections trials can have: the base one and each searched model choice."""
    models = [cfg.model]
    for name, param in spec.search_space.items():
        if spec.param_path(name).startswith("model.") and param.choices is not None:
            for choice in param.choices:
                model = spec.train_config({name: choice}).model
                if model not in models:
                    models.append(model)
    return models


def _check_model(model: ModelConfig, files_here: bool) -> str:
    """Build the architecture (and load its weight files when they are reachable)."""
    skipped = []
    update: dict[str, object] = {}
    if model.pretrained:
        update["pretrained"] = False
        skipped.append("timm's pretrained weights not fetched")
    if not files_here and (model.weights is not None or model.init_checkpoint is not None):
        update |= {"weights": None, "init_checkpoint": None}
        skipped.append("weight files are on the data mount")
    net = build_model(model.model_copy(update=update))
    params = sum(p.numel() for p in net.parameters()) / 1e6
    note = f"; {', '.join(skipped)}" if skipped else ""
    return f"backbone {model.backbone} builds ({params:.1f}M parameters){note}"


def _check_data(cfg: TrainConfig, images: int) -> str:
    """Read and split the annotations as a worker does; decode a spread of images."""
    splits = make_splits(cfg.data)
    samples = [*splits.train, *splits.val, *splits.holdout]
    step = max(1, len(samples) // images)
    picked = samples[::step][:images]
    for sample in picked:
        load_image(sample.image)
    boxes = sum(not ignore for s in samples for ignore in s.ignore)
    return (
        f"data: {len(samples)} usable images ({len(splits.train)} train, {len(splits.val)} val, "
        f"{len(splits.holdout)} holdout), {boxes} boxes; {len(picked)} sample images decode"
    )
