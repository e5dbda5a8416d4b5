"""StudySpec: the shipped specs validate, names map to TrainConfig, the rules hold."""

from __future__ import annotations

import copy
import math
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from sweeper.define import SCHEMA_VERSION, StudySpec, brackets, ideal_saving, load_spec, parse_spec
from sweeper.errors import SpecError
from trainer_core.config import TrainConfig, load_train_config
from trainer_core.errors import ConfigError

STUDIES = Path(__file__).resolve().parents[3] / "studies"
SMALL = Path(__file__).resolve().parents[1] / "specs" / "small.yaml"


def demo_data() -> dict[str, Any]:
    return yaml.safe_load(SMALL.read_text())


@pytest.mark.parametrize("name", ["demo.yaml", "receipts_dbnet.yaml"])
def test_shipped_specs_validate(name: str) -> None:
    spec = load_spec(STUDIES / name)
    assert isinstance(spec.base, TrainConfig)
    for baseline in spec.baselines:
        spec.train_config(baseline)


def test_receipts_spec_prunes_and_anneals_within_its_epochs() -> None:
    """The production spec's invariants, whatever its numbers: every rung falls before the
    last epoch (a rung at it could prune a finished run), every T_max it samples lets the
    cosine reach the low-lr phase within the epochs trained, the selection has a holdout to
    rank by, and trials start from pretrained weights."""
    spec = load_spec(STUDIES / "receipts_dbnet.yaml")
    epochs = spec.base.epochs
    assert spec.rungs() and all(0 < r < epochs for r in spec.rungs())
    low, high = spec.search_space["T_max"].span()
    assert low <= epochs and high <= 2 * epochs
    assert spec.ranking.gap_source == "holdout"
    assert spec.base.data.holdout is not None or spec.base.data.holdout_fraction > 0
    assert spec.base.model.pretrained or spec.base.model.weights is not None


def test_demo_spec_fine_tunes_a_starting_point_with_an_early_first_rung() -> None:
    spec = load_spec(STUDIES / "demo.yaml")
    assert spec.base.model.init_checkpoint == Path("pretrained/best.pt")
    assert spec.rungs()[0] <= 2
    assert spec.budget.n_trials >= 27
    low, high = spec.search_space["lr"].span()
    assert high / low >= 1e4  # from too timid to destructive


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    """YAML 1.1 reads 1e-4 as a string; choices must still come out as numbers."""
    text = SMALL.read_text()
    lr_range = "lr: {low: 1.0e-4, high: 3.0e-3, log: true}"
    assert lr_range in text
    path = tmp_path / "spec.yaml"
    path.write_text(text.replace(lr_range, "lr: {choices: [1e-4, 3e-4, 1e-3]}"))
    spec = load_spec(path)
    assert spec.search_space["lr"].choices == [1e-4, 3e-4, 1e-3]


def test_base_reads_like_a_train_config_file(tmp_path: Path) -> None:
    """One YAML reader: ``1e-4`` means the same in a spec's base, a train config and --set."""
    data = demo_data()
    base = {k: v for k, v in data.pop("base").items() if k not in ("optimizer", "scheduler")}
    base_text = yaml.safe_dump(base) + (
        "optimizer: {lr: 1e-4, weight_decay: 1e-5}\nscheduler: {T_max: 2e1}\n"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data) + "base:\n" + textwrap.indent(base_text, "  "))
    train = tmp_path / "train.yaml"
    train.write_text(base_text.replace("weight_decay: 1e-5", "weight_decay: 0.1"))
    from_spec = load_spec(spec).base
    optimizer, t_max = from_spec.optimizer, from_spec.scheduler.T_max
    assert (optimizer.lr, optimizer.weight_decay, t_max) == (1e-4, 1e-5, 20)
    assert load_train_config(train, ["optimizer.weight_decay=1e-5"]) == from_spec


def test_short_and_dotted_names_map_to_train_config_fields() -> None:
    data = demo_data()
    data["search_space"]["postprocess.unclip_ratio"] = {"low": 1.5, "high": 2.5}
    data["search_space"]["model.backbone"] = {"choices": ["resnet10t", "resnet18"]}
    data["baselines"] = []
    spec = parse_spec(data)
    config = spec.train_config(
        {
            "lr": 3e-4,
            "weight_decay": 2e-5,
            "T_max": 7,
            "eta_min": 2e-6,
            "postprocess.unclip_ratio": 2.0,
            "model.backbone": "resnet18",
        }
    )
    assert config.optimizer.lr == 3e-4
    assert config.optimizer.weight_decay == 2e-5
    assert config.scheduler.T_max == 7
    assert config.scheduler.eta_min == 2e-6
    assert config.postprocess.unclip_ratio == 2.0
    assert config.model.backbone == "resnet18"
    assert config.epochs == spec.base.epochs  # everything else from base
    assert spec.is_int("T_max") and not spec.is_int("lr")


def test_train_config_rejects_unknown_names_and_bad_values() -> None:
    spec = parse_spec(demo_data())
    with pytest.raises(SpecError, match=r"\['momentum'\] are not in the search space"):
        spec.train_config({"momentum": 0.9})
    with pytest.raises(ConfigError, match=r"optimizer\.lr"):
        spec.train_config({"lr": -1.0})


def test_spec_round_trips_through_json() -> None:
    spec = load_spec(STUDIES / "receipts_dbnet.yaml")
    again = parse_spec(spec.model_dump(mode="json"))
    assert again == spec
    assert SCHEMA_VERSION == 1


def test_renamed_revalidates_the_name() -> None:
    spec = parse_spec(demo_data())
    assert spec.renamed("demo-2").name == "demo-2"
    with pytest.raises(SpecError, match="name: 'a b'"):
        spec.renamed("a b")


def test_spec_is_frozen() -> None:
    spec = parse_spec(demo_data())
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


def test_t_max_other_than_epochs_warns_with_the_final_lr() -> None:
    data = demo_data()  # epochs 6, T_max 5..7, lr up to 3e-3, eta_min from 1e-6
    (warning,) = parse_spec(data).warnings()
    lr, eta, epochs = 3e-3, 1e-6, 6
    end_at_7 = eta + (lr - eta) * (1 + math.cos(math.pi * epochs / 7)) / 2
    assert warning.startswith("search_space.T_max: T_max can be 5..7 while base.epochs is 6")
    assert f"with T_max=7 a run ends at lr {end_at_7:.3g}" in warning
    assert "with T_max=5 a run ends at lr" in warning and "past its minimum at epoch 5" in warning


def test_no_warning_when_t_max_follows_the_epochs() -> None:
    data = copy.deepcopy(demo_data())
    del data["search_space"]["T_max"]
    for b in data["baselines"]:
        del b["T_max"]
    assert parse_spec(data).warnings() == []
    data["base"]["scheduler"]["T_max"] = 9  # fixed in base, not the epochs trained
    (warning,) = parse_spec(data).warnings()
    assert warning.startswith("base.scheduler.T_max: T_max can be 9 while base.epochs is 6")


@pytest.mark.parametrize(
    ("lr", "eta_min", "base_lr", "base_eta_min", "message"),
    [
        # both sampled
        (
            {"low": 1e-4, "high": 1e-3},
            {"low": 1e-6, "high": 1e-4},
            None,
            None,
            "search_space.eta_min: eta_min.high (0.0001) must be below lr.low (0.0001)",
        ),
        # eta_min fixed in base, lr sampled
        (
            {"low": 1e-4, "high": 1e-3},
            None,
            None,
            5e-4,
            "search_space.lr: base.scheduler.eta_min (0.0005) must be below lr.low (0.0001)",
        ),
        # lr fixed in base, eta_min sampled
        (
            None,
            {"low": 1e-6, "high": 2e-3},
            1e-3,
            None,
            "search_space.eta_min: eta_min.high (0.002) must be below base.optimizer.lr (0.001)",
        ),
        # lr as choices
        (
            {"choices": [5e-5, 1e-3]},
            {"low": 1e-6, "high": 1e-4},
            None,
            None,
            "search_space.eta_min: eta_min.high (0.0001) must be below the smallest lr choice "
            "(5e-05)",
        ),
    ],
)
def test_eta_min_must_stay_below_lr(
    lr: dict | None,
    eta_min: dict | None,
    base_lr: float | None,
    base_eta_min: float | None,
    message: str,
) -> None:
    data = demo_data()
    data["baselines"] = []
    space = data["search_space"]
    for name, entry in (("lr", lr), ("eta_min", eta_min)):
        if entry is None:
            del space[name]
        else:
            space[name] = entry
    if base_lr is not None:
        data["base"]["optimizer"]["lr"] = base_lr
    if base_eta_min is not None:
        data["base"]["scheduler"]["eta_min"] = base_eta_min
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert message in str(info.value)
    assert "absolute" in str(info.value)


def test_holdout_gap_needs_a_holdout_but_train_gap_does_not() -> None:
    data = demo_data()
    data["base"]["data"]["holdout_fraction"] = 0.0
    with pytest.raises(SpecError, match=r"ranking\.gap_source: holdout needs a holdout split"):
        parse_spec(data)
    data["base"]["data"]["holdout"] = ["a.jpg"]
    parse_spec(data)
    data["base"]["data"]["holdout"] = None
    data["ranking"] = {"gap_source": "train"}
    assert parse_spec(data).ranking.gap_source == "train"


def test_max_resource_defaults_to_epochs() -> None:
    data = demo_data()
    del data["pruner"]["max_resource"]
    spec = parse_spec(data)
    assert spec.pruner.max_resource is None
    assert spec.max_resource == spec.base.epochs


@pytest.mark.parametrize(
    ("pruner", "epochs", "rungs"),
    [
        ({"min_resource": 1, "reduction_factor": 3}, 20, [1, 3, 9]),
        ({"min_resource": 1, "reduction_factor": 3}, 9, [1, 3]),  # 9 is the last epoch
        ({"min_resource": 2, "reduction_factor": 2}, 9, [2, 4, 8]),
        ({"kind": "none", "min_resource": 9}, 9, []),  # no pruning: any first rung
    ],
)
def test_rungs_stop_before_the_last_epoch(
    pruner: dict[str, Any], epochs: int, rungs: list[int]
) -> None:
    data = demo_data()
    data["pruner"] = pruner
    data["base"]["epochs"] = epochs
    data["search_space"]["T_max"] = {"low": 1, "high": epochs}
    assert parse_spec(data).rungs() == rungs


@pytest.mark.parametrize(("min_resource", "rf", "epochs"), [(1, 3, 9), (1, 3, 27), (2, 2, 20)])
def test_bracket_arithmetic_matches_optuna(min_resource: int, rf: int, epochs: int) -> None:
    pruner = optuna.pruners.HyperbandPruner(min_resource, epochs, rf)
    study = optuna.create_study(pruner=pruner)
    pruner._try_initialization(study)
    found = brackets(min_resource, rf, epochs)
    assert len(found) == pruner._n_brackets
    assert [b.share for b in found] == pruner._trial_allocation_budgets
    assert [p._min_early_stopping_rate for p in pruner._pruners] == [b.index for b in found]


def test_ideal_saving_of_the_brackets() -> None:
    # epochs 9, r 1, η 3: brackets [1, 3] (9 trials, 1 + 2/3 + 6/9 epochs), [3] (5 trials,
    # 3 + 6/3), [] (3 trials, 9): (9·7/3 + 5·5 + 3·9) / 17 = 73/17 epochs a trial.
    assert ideal_saving(1, 3, 9) == pytest.approx(9 / (73 / 17))
    assert ideal_saving(1, 3, 9, "successive_halving") == pytest.approx(9 / (7 / 3))
    assert ideal_saving(1, 3, 9, "none") == 1.0


def test_defaults_of_the_optional_sections() -> None:
    data = demo_data()
    for section in ("sampler", "pruner", "ranking"):
        data.pop(section, None)
    data.pop("retries", None)
    spec: StudySpec = parse_spec(data)
    assert spec.sampler.constant_liar and spec.sampler.multivariate
    assert spec.retries.max_retries == 2
    assert (spec.ranking.gap_source, spec.ranking.penalty, spec.ranking.tolerance) == (
        "holdout",
        1.0,
        0.005,
    )
