"""Train / validation / holdout splits of a dataset, as the data config describes them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer_core.config import ConfigError, DataConfig
from trainer_core.data.annotations import Sample, read_samples
from trainer_core.errors import DataError

__all__ = ["Splits", "make_splits", "sample_name", "split_samples"]

logger = logging.getLogger(__name__)

_SPLITS = ("train", "val", "holdout")


@dataclass(frozen=True)
class Splits:
    """Disjoint sample lists; ``holdout`` is empty unless the config asks for one."""

    train: list[Sample]
    val: list[Sample]
    holdout: list[Sample]


def make_splits(cfg: DataConfig) -> Splits:
    """Read the dataset ``cfg`` points at and split it (see :func:`split_samples`).

    Raises:
        DataError: unreadable data, or a split that ends up empty (the message names it).
        ConfigError: ``n_folds`` together with explicit ``train`` or ``val`` lists.

    Example:
        >>> cfg = DataConfig(image_root=Path("synth/images"), annotations=Path("synth/a.json"))
        >>> splits = make_splits(cfg)  # doctest: +SKIP
        >>> len(splits.train), len(splits.val)  # doctest: +SKIP
        (26, 6)
    """
    return split_samples(read_samples(cfg), cfg)


def sample_name(sample: Sample, image_root: Path) -> str:
    """The name split lists use for a sample: its image path relative to ``image_root``."""
    try:
        return sample.image.relative_to(image_root).as_posix()
    except ValueError:
        return sample.image.as_posix()


def split_samples(samples: list[Sample], cfg: DataConfig) -> Splits:
    """Split samples by explicit name lists, then by seeded fractions or folds.

    Images named in ``cfg.train`` / ``val`` / ``holdout`` go where they are listed. The others
    are shuffled with ``split_seed``; a split without a list takes its fraction of them
    (``holdout_fraction``, ``val_fraction``; train takes the rest). With ``n_folds``, the
    non-holdout images are dealt into that many folds and fold ``fold`` is validation, the
    rest training. Each split keeps the readers' (sorted) order.

    Raises:
        DataError: a name in two lists, or a split that ends up empty or without a single
            usable (not don't-care) box.
        ConfigError: ``n_folds`` together with explicit ``train`` or ``val`` lists.
    """
    root = Path(cfg.image_root)
    by_name = {sample_name(s, root): s for s in samples}
    lists = {name: getattr(cfg, name) for name in _SPLITS}
    if cfg.n_folds is not None and (lists["train"] is not None or lists["val"] is not None):
        raise ConfigError(
            "data.n_folds: folds choose train and val; leave data.train and data.val unset"
        )
    chosen: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for split, names in lists.items():
        if names is None:
            continue
        for name in names:
            if owner.get(name, split) != split:
                raise DataError(f"data.{split}: {name!r} is also listed in data.{owner[name]}")
            owner[name] = split
        known = [n for n in dict.fromkeys(names) if n in by_name]
        missing = len(set(names)) - len(known)
        if missing:
            unknown = [n for n in names if n not in by_name][:3]
            logger.warning(
                "data.%s: %d listed images are not among the usable ones (missing, unreadable "
                "or dropped), e.g. %s",
                split,
                missing,
                ", ".join(map(repr, unknown)),
            )
        chosen[split] = known
    pool = [n for n in by_name if n not in owner]
    shuffled = [pool[i] for i in np.random.default_rng(cfg.split_seed).permutation(len(pool))]
    if lists["holdout"] is None:
        count = _share(cfg.holdout_fraction, len(shuffled))
        chosen["holdout"], shuffled = shuffled[:count], shuffled[count:]
    if cfg.n_folds is not None and cfg.fold is not None:
        folds = [shuffled[i :: cfg.n_folds] for i in range(cfg.n_folds)]
        chosen["val"] = folds[cfg.fold]
        chosen["train"] = [n for i, f in enumerate(folds) if i != cfg.fold for n in f]
        shuffled = []
    else:
        if lists["val"] is None:
            count = _share(cfg.val_fraction, len(pool))
            chosen["val"], shuffled = shuffled[:count], shuffled[count:]
        if lists["train"] is None:
            chosen["train"], shuffled = shuffled, []
    if shuffled:
        logger.info("%d images are in no split (train is listed explicitly)", len(shuffled))
    asked_holdout = lists["holdout"] is not None or cfg.holdout_fraction > 0
    for split in _SPLITS:
        if not chosen[split] and (split != "holdout" or asked_holdout):
            fix = (
                f"list images in data.{split} or change the fractions"
                if by_name
                else "every annotated image was dropped; the annotations' log lines say why"
            )
            raise DataError(
                f"data: the {split} split is empty ({len(by_name)} usable images under "
                f"{root}); {fix}"
            )
    order = {name: i for i, name in enumerate(by_name)}
    picked = {
        split: [by_name[n] for n in sorted(chosen[split], key=order.__getitem__)]
        for split in _SPLITS
    }
    for split, split_samples_ in picked.items():
        if split_samples_ and not any(not i for s in split_samples_ for i in s.ignore):
            raise DataError(
                f"data: the {split} split has no usable box ({len(split_samples_)} images under "
                f"{root}; every box was dropped or is don't-care); the annotations' log lines "
                "say why each was dropped"
            )
    return Splits(**picked)


def _share(fraction: float, total: int) -> int:
    """Images a fraction takes: rounded, at least one when the fraction is above zero."""
    if fraction <= 0 or total == 0:
        return 0
    return max(1, round(fraction * total))
