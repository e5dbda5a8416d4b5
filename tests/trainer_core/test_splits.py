"""Splits: explicit lists, seeded fractions, k-fold, and empty splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_core.config import ConfigError, DataConfig
from trainer_core.data import make_splits, sample_name
from trainer_core.data.synthetic import generate
from trainer_core.errors import DataError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    ann = generate(tmp_path_factory.mktemp("splits"), n_images=20, size=(32, 32), seed=1)
    return DataConfig(format="ufo", image_root=ann.parent / "images", annotations=ann)


def names(samples: list, cfg: DataConfig) -> list[str]:
    return [sample_name(s, Path(cfg.image_root)) for s in samples]


def with_(cfg: DataConfig, **update: object) -> DataConfig:
    return DataConfig.model_validate({**cfg.model_dump(), **update})


def test_explicit_lists(data: DataConfig) -> None:
    cfg = with_(
        data,
        train=["synth_00003.jpg", "synth_00001.jpg"],
        val=["synth_00002.jpg"],
        holdout=["synth_00004.jpg"],
    )
    splits = make_splits(cfg)
    assert names(splits.train, cfg) == ["synth_00001.jpg", "synth_00003.jpg"]  # reader order
    assert names(splits.val, cfg) == ["synth_00002.jpg"]
    assert names(splits.holdout, cfg) == ["synth_00004.jpg"]


def test_listed_val_takes_the_rest_as_train(data: DataConfig) -> None:
    splits = make_splits(with_(data, val=["synth_00000.jpg", "synth_00019.jpg"]))
    assert len(splits.val) == 2 and len(splits.train) == 18 and splits.holdout == []


def test_an_image_in_two_lists_is_an_error(data: DataConfig) -> None:
    with pytest.raises(
        DataError, match=r"data\.val: 'synth_00001\.jpg' is also listed in data\.train"
    ):
        make_splits(with_(data, train=["synth_00001.jpg"], val=["synth_00001.jpg"]))


def test_fractions_are_seeded_disjoint_and_complete(data: DataConfig) -> None:
    cfg = with_(data, val_fraction=0.25, holdout_fraction=0.2, split_seed=7)
    a, b = make_splits(cfg), make_splits(cfg)
    parts = [names(getattr(a, s), cfg) for s in ("train", "val", "holdout")]
    assert [len(p) for p in parts] == [11, 5, 4]
    assert parts == [names(getattr(b, s), cfg) for s in ("train", "val", "holdout")]
    assert len(set().union(*parts)) == 20
    other = make_splits(with_(cfg, split_seed=8))
    assert names(other.val, cfg) != parts[1]


def test_folds_are_disjoint_and_cover_the_non_holdout_images(data: DataConfig) -> None:
    vals, holdouts = [], set()
    for fold in range(4):
        cfg = with_(data, n_folds=4, fold=fold, holdout_fraction=0.2, split_seed=3)
        splits = make_splits(cfg)
        train, val = set(names(splits.train, cfg)), set(names(splits.val, cfg))
        holdouts.add(tuple(names(splits.holdout, cfg)))
        assert not train & val and len(train | val) == 16
        vals.append(val)
    assert len(holdouts) == 1  # the holdout does not depend on the fold
    assert sum(len(v) for v in vals) == 16 and len(set().union(*vals)) == 16


def test_folds_with_explicit_train_list_is_a_config_error(data: DataConfig) -> None:
    with pytest.raises(ConfigError, match=r"data\.n_folds"):
        make_splits(with_(data, n_folds=2, fold=0, train=["synth_00001.jpg"]))


@pytest.mark.parametrize(
    ("update", "split"),
    [
        ({"val": ["no_such_image.jpg"]}, "val"),
        ({"train": ["synth_00001.jpg"], "val": ["synth_00002.jpg"], "holdout": []}, "holdout"),
        ({"train": [], "val": ["synth_00002.jpg"]}, "train"),
    ],
)
def test_a_split_that_ends_empty_is_named(data: DataConfig, update: dict, split: str) -> None:
    with pytest.raises(DataError, match=f"the {split} split is empty"):
        make_splits(with_(data, **update))


def test_no_holdout_unless_asked(data: DataConfig) -> None:
    assert make_splits(data).holdout == []


def test_only_unusable_images_listed_leaves_the_split_empty() -> None:
    """The broken corpus: corrupt.jpg and lonely.png are dropped, so a val of them is empty."""
    broken = Path(__file__).parent / "data" / "broken" / "icdar"
    cfg = DataConfig(
        format="icdar",
        image_root=broken / "images",
        annotations=broken / "annotations",
        val=["corrupt.jpg", "lonely.png"],
    )
    with pytest.raises(DataError, match="the val split is empty"):
        make_splits(cfg)


def test_no_usable_image_at_all_says_so_instead_of_listing_images(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    cfg = DataConfig(format="icdar", image_root=tmp_path / "images")
    with pytest.raises(DataError) as info:
        make_splits(cfg)
    assert str(info.value) == (
        f"data: the train split is empty (0 usable images under {tmp_path / 'images'}); "
        "every annotated image was dropped; the annotations' log lines say why"
    )


def test_a_split_without_a_usable_box_is_bad_data(tmp_path: Path) -> None:
    import json

    ann = generate(tmp_path, n_images=10, size=(32, 32), seed=2)
    tree = json.loads(ann.read_text())
    nan, negative, two_points = (
        [[float("nan"), 1], [2, 2], [3, 1]],
        [[-5, -5], [-1, -5], [-1, -1]],
        [[1, 1], [5, 5]],
    )
    for image in tree["images"].values():  # every box is dropped
        for i, word in enumerate(image["words"].values()):
            word["points"] = (nan, negative, two_points)[i % 3]
    ann.write_text(json.dumps(tree))
    cfg = DataConfig(format="ufo", image_root=ann.parent / "images", annotations=ann)
    with pytest.raises(DataError, match="the train split has no usable box"):
        make_splits(cfg)
