"""Train configs read YAML as study specs do: ``1e-4`` is a float in a file and in ``--set``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainer_core.config import TrainConfig, apply_overrides, load_train_config, parse_override
from trainer_core.errors import ConfigError
from trainer_core.yaml_io import dump_yaml_text, load_yaml_text


def test_exponent_without_dot_is_a_float() -> None:
    data = load_yaml_text("lr: 1e-4\nsmall: -2.5E-7\nT_max: 2e1\nint: 20\nname: '1e-4'")
    assert data == {"lr": 1e-4, "small": -2.5e-7, "T_max": 20.0, "int": 20, "name": "1e-4"}
    assert [type(v) for v in data.values()] == [float, float, float, int, str]


def test_override_value_is_read_like_a_file() -> None:
    key, value = parse_override("optimizer.lr=1e-4")
    assert (key, value) == ("optimizer.lr", 1e-4)
    assert type(value) is float


def test_train_config_file_and_overrides_read_exponents_as_numbers(tmp_path: Path) -> None:
    # PyYAML alone reads "2e1" as a string, which an int field rejects.
    path = tmp_path / "train.yaml"
    path.write_text("optimizer: {lr: 1e-4}\nscheduler: {T_max: 2e1}\n")
    config = load_train_config(path, ["optimizer.weight_decay=1e-5", "epochs=3e1"])
    assert (config.optimizer.lr, config.optimizer.weight_decay) == (1e-4, 1e-5)
    assert (config.scheduler.T_max, config.epochs) == (20, 30)


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("optimizer: {lr: [1e-4\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_override("optimizer.betas=[0.9")


def test_a_config_that_is_not_utf8_names_the_file_and_the_byte(tmp_path: Path) -> None:
    """Latin-1 from an old editor (0xE9, an e acute) in a comment: one line, file and place."""
    path = tmp_path / "train.yaml"
    path.write_bytes(b"epochs: 3\n# r\xe9glage fin\noptimizer: {lr: 1e-4}\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    assert str(info.value) == (
        f"{path}: not UTF-8: byte 0xe9 at position 13 (line 2, column 4); save the file as UTF-8"
    )


def test_a_missing_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file$"):
        load_train_config(tmp_path / "nope.yaml")


def _exported(tmp_path: Path, config: TrainConfig, dump: Callable[[Any], str]) -> TrainConfig:
    """Write ``config`` as export-best does (with ``dump``) and read it back as train does."""
    path = tmp_path / "best.yaml"
    path.write_text(dump(config.model_dump(mode="json")))
    return load_train_config(path)


def test_exported_config_reads_back_equal(tmp_path: Path) -> None:
    config = apply_overrides(
        TrainConfig(), {"optimizer.lr": 3.85e-4, "scheduler.eta_min": 1e-10, "grad_clip": 1e20}
    )
    assert _exported(tmp_path, config, lambda d: yaml.safe_dump(d, sort_keys=False)) == config
    assert _exported(tmp_path, config, dump_yaml_text) == config


def test_strings_that_look_like_exponents_stay_strings(tmp_path: Path) -> None:
    config = apply_overrides(TrainConfig(), {"data.train": ["1e5", "2e1.jpg"]})
    assert dump_yaml_text(config.model_dump(mode="json")).count("'1e5'") == 1
    assert _exported(tmp_path, config, dump_yaml_text) == config
