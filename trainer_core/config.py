"""TrainConfig: everything one training run needs, validated where it enters.

Defaults live here and nowhere else: the CLI, the study spec and the worker all build a
``TrainConfig`` and read its fields. Models are frozen; derive a changed copy with
:func:`apply_overrides` or ``model_copy(update=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trainer_core.errors import ConfigError
from trainer_core.yaml_io import load_yaml_text, read_yaml_file

__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "EarlyStoppingConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PostprocessConfig",
    "SchedulerConfig",
    "TargetsConfig",
    "TrainConfig",
    "apply_overrides",
    "format_validation_error",
    "load_train_config",
    "parse_override",
]


class StrictModel(BaseModel):
    """Unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


BACKBONE_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


class ModelConfig(StrictModel):
    """The detector, and where it starts: from scratch or one of three starting points.

    ``pretrained`` (timm's weights, hub or local cache), ``weights`` (a local backbone file)
    and ``init_checkpoint`` (a whole DBNet this project trained) exclude each other.
    """

    backbone: str = Field("resnet18", description="timm model name, built with features_only")
    neck_channels: int = Field(256, ge=16, description="FPN inner channels")
    pretrained: bool = Field(
        False, description="timm's pretrained backbone weights (hub download or local cache)"
    )
    weights: Path | None = Field(
        None,
        description="local backbone weights (.safetensors, .pth/.pt/.bin state dict); "
        "None: from scratch or model.pretrained",
    )
    init_checkpoint: Path | None = Field(
        None,
        description="a whole DBNet (best.pt/last.pt of sweeper train or a trial) to fine-tune; "
        "the optimizer and schedule start fresh",
    )
    k: float = Field(50.0, gt=0, description="steepness of the approximate binarization")

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, path: Path | None) -> Path | None:
        if path is not None and path.suffix not in BACKBONE_FILE_SUFFIXES:
            raise ValueError(
                f"{path}: expected a {', '.join(BACKBONE_FILE_SUFFIXES)} backbone file; "
                "for a whole DBNet checkpoint use model.init_checkpoint"
            )
        return path

    @field_validator("init_checkpoint")
    @classmethod
    def _check_init_checkpoint(cls, path: Path | None) -> Path | None:
        if path is not None and path.suffix not in CHECKPOINT_SUFFIXES:
            raise ValueError(
                f"{path}: expected a DBNet checkpoint (best.pt/last.pt); "
                "for backbone weights use model.weights"
            )
        return path

    @model_validator(mode="after")
    def _one_start(self) -> ModelConfig:
        given = [
            name
            for name, on in (
                ("pretrained", self.pretrained),
                ("weights", self.weights is not None),
                ("init_checkpoint", self.init_checkpoint is not None),
            )
            if on
        ]
        if len(given) > 1:
            raise ValueError(
                f"{' and '.join(given)} are both starting points; set one "
                "(init_checkpoint: the whole DBNet, weights: a backbone file, "
                "pretrained: timm's backbone weights)"
            )
        return self

    def with_root(self, root: Path) -> ModelConfig:
        """This config with relative weight paths resolved against ``root`` (a node's mount)."""
        update = {
            name: root / path
            for name in ("weights", "init_checkpoint")
            if (path := getattr(self, name)) is not None and not path.is_absolute()
        }
        return self.model_copy(update=update) if update else self


class DataConfig(StrictModel):
    """Where the images are and how they split into train / val / holdout.

    Splits come from explicit file lists (``train``/``val``/``holdout``, names relative to
    ``image_root``) or, for files not listed, from a seeded split by fractions. With
    ``n_folds`` set, ``fold`` picks which fold of the non-holdout images is validation.
    """

    format: Literal["icdar", "ufo"] = "ufo"
    image_root: Path = Path("data/images")
    annotations: Path | None = Field(
        None,
        description="icdar: folder of per-image .txt/.csv files (default: image_root); "
        "ufo: the JSON file",
    )
    train: list[str] | None = None
    val: list[str] | None = None
    holdout: list[str] | None = None
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    holdout_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    split_seed: int = 0
    n_folds: int | None = Field(None, ge=2)
    fold: int | None = Field(None, ge=0)
    gap_subset: int = Field(
        16, ge=1, description="training images scored like validation when there is no holdout"
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if (self.fold is None) != (self.n_folds is None):
            raise ValueError("fold and n_folds go together: set both or neither")
        if self.fold is not None and self.n_folds is not None and self.fold >= self.n_folds:
            raise ValueError(f"fold={self.fold} must be below n_folds={self.n_folds}")
        if self.val_fraction + self.holdout_fraction >= 1.0:
            raise ValueError("val_fraction + holdout_fraction must leave images to train on")
        return self

    def with_root(self, root: Path) -> DataConfig:
        """This config with relative paths resolved against ``root`` (a node's data mount)."""
        ann = self.annotations
        return self.model_copy(
            update={
                "image_root": root / self.image_root,
                "annotations": None if ann is None else root / ann,
            }
        )


class TargetsConfig(StrictModel):
    shrink_ratio: float = Field(0.4, gt=0.0, lt=1.0)
    thresh_min: float = Field(0.3, ge=0.0, le=1.0)
    thresh_max: float = Field(0.7, ge=0.0, le=1.0)
    min_text_size: int = Field(8, ge=0)

    @model_validator(mode="after")
    def _check(self) -> TargetsConfig:
        if self.thresh_min >= self.thresh_max:
            raise ValueError("thresh_min must be below thresh_max")
        return self


class AugmentConfig(StrictModel):
    enabled: bool = True
    scale: tuple[float, float] = (0.5, 1.5)
    rotate: float = Field(10.0, ge=0.0, le=180.0, description="max degrees either way")
    color_jitter: float = Field(0.2, ge=0.0, le=1.0)
    crop_p: float = Field(0.5, ge=0.0, le=1.0, description="chance of a text-keeping crop")


class LossConfig(StrictModel):
    prob_weight: float = Field(5.0, ge=0.0)
    thresh_weight: float = Field(10.0, ge=0.0)
    binary_weight: float = Field(1.0, ge=0.0)
    negative_ratio: float = Field(3.0, gt=0.0)


class OptimizerConfig(StrictModel):
    """AdamW. Norm and bias parameters get no weight decay."""

    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    backbone_lr_mult: float = Field(1.0, gt=0.0)


class SchedulerConfig(StrictModel):
    """Cosine annealing from ``lr`` to ``eta_min`` over ``T_max`` epochs (or steps)."""

    T_max: int | None = Field(None, ge=1, description="cosine period; None = the epochs trained")
    eta_min: float = Field(1e-6, ge=0.0)
    step_per: Literal["epoch", "step"] = "epoch"
    warmup_epochs: int = Field(0, ge=0)


class PostprocessConfig(StrictModel):
    thresh: float = Field(0.3, gt=0.0, lt=1.0)
    box_thresh: float = Field(0.7, ge=0.0, le=1.0)
    max_candidates: int = Field(1000, ge=1)
    unclip_ratio: float = Field(1.5, gt=0.0)
    min_size: float = Field(3.0, ge=0.0)
    score_mode: Literal["fast", "polygon"] = "fast"
    output: Literal["quad", "polygon"] = "quad"


class EarlyStoppingConfig(StrictModel):
    patience: int | None = Field(None, ge=1, description="evaluations without improvement")
    min_delta: float = Field(0.0, ge=0.0)


class TrainConfig(StrictModel):
    """One training run of a DBNet text detector."""

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    targets: TargetsConfig = TargetsConfig()
    augment: AugmentConfig = AugmentConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    input_size: int = Field(640, ge=32, description="square side images are padded to")
    batch_size: int = Field(8, ge=1)
    grad_accum_steps: int = Field(1, ge=1)
    epochs: int = Field(10, ge=1)
    precision: Literal["auto", "fp16", "bf16", "fp32"] = "auto"
    grad_clip: float | None = Field(None, gt=0.0, description="max gradient norm; None = off")
    eval_every: int = Field(1, ge=1)
    metric_average: Literal["dataset", "image"] = "dataset"
    nonfinite_patience: int = Field(
        8, ge=1, description="consecutive non-finite optimizer steps that fail the run"
    )
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    num_workers: int = Field(0, ge=0)
    output_dir: Path = Path("runs/train")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.input_size % 32:
            raise ValueError(f"input_size={self.input_size} must be a multiple of 32")
        return self

    @property
    def t_max(self) -> int:
        """The cosine period actually used."""
        return self.scheduler.T_max or self.epochs


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``field.path: message``."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        loc = f"{prefix}.{loc}" if prefix and loc else prefix or loc
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)`` with the value parsed as YAML (numbers, lists).

    The value is read like a YAML file's (:func:`~trainer_core.yaml_io.load_yaml_text`), so
    ``optimizer.lr=1e-4`` gives the float 1e-4.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value, e.g. optimizer.lr=1e-4")
    try:
        value = load_yaml_text(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from e
    return key.strip(), value


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree["a"]["b"] = value`` for ``"a.b"``, creating sections as needed."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[leaf] = value


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A new config with dotted-path values set, validated as a whole."""
    tree = config.model_dump(mode="json")
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    return validate_train_config(tree)


def validate_train_config(tree: dict[str, Any], source: str = "") -> TrainConfig:
    """``TrainConfig`` from a mapping, or :class:`ConfigError` naming each bad field."""
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as e:
        where = f"{source}: " if source else ""
        raise ConfigError(where + format_validation_error(e)) from e


def load_train_config(path: Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML train config, apply ``key=value`` overrides, validate.

    The file is read with :func:`~trainer_core.yaml_io.read_yaml_file`, as study specs are.

    Example:
        >>> cfg = load_train_config(Path("best.yaml"), ["optimizer.lr=3e-4"])  # doctest: +SKIP
    """
    tree = read_yaml_file(path) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for item in overrides or []:
        set_dotted(tree, *parse_override(item))
    return validate_train_config(tree, source=str(path))
