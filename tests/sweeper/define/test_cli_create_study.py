"""sweeper create-study: bad specs are one line and exit 2, good ones say what to run next."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from storage import open_storage
from sweeper.cli import app

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "tests" / "sweeper" / "specs" / "small.yaml"
DEMO_DATA = yaml.safe_load(DEMO.read_text())
DELETE = object()

runner = CliRunner()


def changed(changes: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """The demo spec with values set (or removed, for DELETE) at key paths."""
    data = copy.deepcopy(DEMO_DATA)
    for path, value in changes.items():
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return data


INVALID = {
    "unknown top-level key": (
        changed({("foo",): 1}),
        "foo: Extra inputs are not permitted",
    ),
    "unknown key in a range": (
        changed({("search_space", "lr", "scale"): 2}),
        "search_space.lr.scale: Extra inputs are not permitted",
    ),
    "low not below high": (
        changed({("search_space", "lr", "low"): 1e-2}),
        "search_space.lr: low (0.01) must be below high (0.003)",
    ),
    "log range from zero": (
        changed({("search_space", "weight_decay", "low"): 0.0}),
        "search_space.weight_decay: log scale needs low > 0",
    ),
    "range and choices": (
        changed({("search_space", "lr", "choices"): [1e-3, 2e-3]}),
        "search_space.lr: give either choices or a range",
    ),
    "not a train-config field": (
        changed({("search_space", "unclip_ratio"): {"low": 1.5, "high": 2.5}}),
        "search_space.unclip_ratio: 'unclip_ratio' is not a train-config field; "
        "did you mean postprocess.unclip_ratio?",
    ),
    "a section, not a field": (
        changed({("search_space", "optimizer"): {"low": 1, "high": 2}}),
        "search_space.optimizer: 'optimizer' is a train-config section; name one of its "
        "fields: optimizer.lr, optimizer.weight_decay",
    ),
    "two names for one field": (
        changed({("search_space", "optimizer.lr"): {"low": 1e-4, "high": 1e-3}}),
        "search_space.optimizer.lr: lr already sets optimizer.lr; keep one of the two",
    ),
    "range over a text field": (
        changed({("search_space", "model.backbone"): {"low": 1, "high": 2}}),
        "search_space.model.backbone: model.backbone is not a number field",
    ),
    "choice the train config rejects": (
        changed({("search_space", "postprocess.score_mode"): {"choices": ["fast", "slow"]}}),
        "search_space.postprocess.score_mode: 'slow' is not a valid postprocess.score_mode",
    ),
    "bound the train config rejects": (
        changed({("search_space", "T_max", "low"): 0}),
        "search_space.T_max: 0 is not a valid scheduler.T_max",
    ),
    "fractional bound on an int field": (
        changed({("search_space", "T_max", "low"): 4.5}),
        "search_space.T_max: scheduler.T_max is an int field",
    ),
    "step that does not divide the range": (
        changed(
            {("search_space", "postprocess.unclip_ratio"): {"low": 1.5, "high": 2.5, "step": 0.3}}
        ),
        "search_space.postprocess.unclip_ratio: high - low (1) must be a multiple of step (0.3)",
    ),
    "epochs sampled": (
        changed({("search_space", "epochs"): {"low": 2, "high": 6}}),
        "search_space.epochs: epochs is Hyperband's resource",
    ),
    "eta_min reaching lr": (
        changed({("search_space", "eta_min", "high"): 2e-4}),
        "search_space.eta_min: eta_min.high (0.0002) must be below lr.low (0.0001): eta_min is "
        "the absolute lr",
    ),
    "T_max beyond twice the epochs": (
        changed({("search_space", "T_max", "high"): 13}),
        "search_space.T_max: T_max.high (13) must be at most 2 × base.epochs (12)",
    ),
    "max_resource other than epochs": (
        changed({("pruner", "max_resource"): 3}),
        "pruner.max_resource (3) must be base.epochs (6)",
    ),
    "first rung at the last epoch": (
        changed({("pruner", "min_resource"): 6}),
        "pruner.min_resource (6): the first rung is at epoch 6, at or past the last epoch",
    ),
    "first rung past the last epoch, successive halving": (
        changed({("pruner", "min_resource"): 7, ("pruner", "kind"): "successive_halving"}),
        "pruner.min_resource (7): the first rung is at epoch 7",
    ),
    "unknown pruner kind": (
        changed({("pruner", "kind"): "median"}),
        "pruner.kind: Input should be 'auto', 'hyperband', 'successive_halving', "
        "'best_so_far', 'schedule_aware' or 'none'",
    ),
    "holdout gap without a holdout": (
        changed({("base", "data", "holdout_fraction"): 0.0}),
        "ranking.gap_source: holdout needs a holdout split",
    ),
    "baseline missing a parameter": (
        changed({("baselines",): [{"lr": 1e-3, "weight_decay": 1e-4, "T_max": 6}]}),
        "baselines[0]: missing ['eta_min']",
    ),
    "baseline with an extra name": (
        changed(
            {
                ("baselines",): [
                    {"lr": 1e-3, "weight_decay": 1e-4, "T_max": 6, "eta_min": 1e-5, "momentum": 0.9}
                ]
            }
        ),
        "baselines[0]: ['momentum'] not in search_space",
    ),
    "baseline outside the space": (
        changed({("baselines",): [{"lr": 0.1, "weight_decay": 1e-4, "T_max": 6, "eta_min": 1e-5}]}),
        "baselines[0].lr: 0.1 is outside the search space (0.0001..0.003 log)",
    ),
    "unknown train-config key": (
        changed({("base", "optimizer", "momentum"): 0.9}),
        "base.optimizer.momentum: Extra inputs are not permitted",
    ),
    "missing budget": (
        changed({("budget",): DELETE}),
        "budget: Field required",
    ),
    "bad study name": (
        changed({("name",): "my study"}),
        "name: 'my study': use up to 128 letters",
    ),
    "reduction factor below 2": (
        changed({("pruner", "reduction_factor"): 1}),
        "pruner.reduction_factor: Input should be greater than or equal to 2",
    ),
}


@pytest.mark.parametrize(("data", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_spec_is_one_line_exit_2_and_creates_nothing(
    data: dict[str, Any], message: str, tmp_path: Path, sqlite_url: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["create-study", str(spec), "--storage", sqlite_url])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {spec}: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "sweeps.db").exists()  # the storage was never even opened


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such file"),
        (b"name: [unclosed\n", "not valid YAML"),
        (b"- a list\n", "expected a mapping at the top level"),
        (
            b"name: x\n# r\xe9glage\n",  # Latin-1 from an old editor
            "not UTF-8: byte 0xe9 at position 11 (line 2, column 4); save the file as UTF-8",
        ),
    ],
)
def test_unreadable_spec_file(text: bytes | None, message: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    if text is not None:
        spec.write_bytes(text)
    result = runner.invoke(
        app, ["create-study", str(spec), "--storage", f"sqlite:///{tmp_path}/x.db"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {spec}: {message}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "create-study", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("missing.yaml: no such file")


def test_create_study_prints_the_study_and_what_to_run_next(
    storage_url: str, study_name: str
) -> None:
    result = runner.invoke(
        app, ["create-study", str(DEMO), "--storage", storage_url, "--name", study_name]
    )
    assert result.exit_code == 0, result.output
    assert f"study {study_name} ready in {storage_url}" in result.stdout
    assert f"sweeper worker --study {study_name} --storage '{storage_url}'" in result.stdout
    assert f"sweeper dashboard --storage '{storage_url}'" in result.stdout
    assert "optuna-dashboard" not in result.stdout  # no pictures, and psycopg 3 for postgresql://
    # The spec searches T_max and leaves pruner.kind at auto: create-study says what it chose.
    chosen = "best H-mean so far, chosen for a T_max search by pruner.kind: auto (replayed"
    assert f"pruning: successive halving on each trial's {chosen}" in result.stdout
    assert "rungs at epochs 1, 3 of 6" in result.stdout
    assert "warning: search_space.T_max: T_max can be 5..7 while base.epochs is 6" in result.stderr
    assert study_name in optuna.get_all_study_names(open_storage(storage_url))


def test_exist_ok_accepts_the_same_spec_only(sqlite_url: str, tmp_path: Path) -> None:
    args = ["create-study", str(DEMO), "--storage", sqlite_url]
    assert runner.invoke(app, args).exit_code == 0

    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "already exists with this same spec; pass --exist-ok" in again.stderr

    assert runner.invoke(app, [*args, "--exist-ok"]).exit_code == 0

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(changed({("budget", "n_trials"): 99})))
    different = runner.invoke(
        app, ["create-study", str(other), "--storage", sqlite_url, "--exist-ok"]
    )
    assert different.exit_code == 2
    assert "already exists and its stored spec differs" in different.stderr


def test_storage_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("SWEEPER_STORAGE", url)
    result = runner.invoke(app, ["create-study", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "sweeper worker --study demo\n" in result.stdout  # no --storage to repeat
    assert "sweeper dashboard\n" in result.stdout
    assert optuna.get_all_study_names(open_storage(url)) == ["demo"]


# ---- what create-study and sweeper check catch before anything is stored --------------


def _tiny(tmp_path: Path, **base: Any) -> Path:
    from tests.sweeper.tiny_sweep import make_data, tiny_spec, write_spec

    make_data(tmp_path)
    spec = tiny_spec("checked", 4)
    spec["base"]["model"].update(base)
    return write_spec(tmp_path / "spec.yaml", spec)


def test_check_builds_the_backbone_and_reads_the_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(_tiny(tmp_path)), "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "checked: backbone mobilenetv3_small_050 builds (" in result.stdout
    assert (  # 47 of the 50 boxes, the other 3 are don't-care
        "checked: data: 10 usable images (6 train, 2 val, 2 holdout), 47 boxes; "
        "8 sample images decode"
    ) in result.stdout
    elsewhere = runner.invoke(app, ["check", str(_tiny(tmp_path))])  # from another directory
    assert elsewhere.exit_code == 0, elsewhere.output
    assert "checked: data: not checked (tiny-data/images is not here; pass --data-root" in (
        elsewhere.stdout
    )


def _broken_json(root: Path) -> None:
    (root / "tiny-data" / "annotations.json").write_text('{"images": {"a.jpg": {"wo')


def _no_images(root: Path) -> None:
    for image in (root / "tiny-data" / "images").iterdir():
        image.unlink()


@pytest.mark.parametrize(
    ("model", "damage", "message"),
    [
        ({"backbone": "no_such_net"}, None, "model.backbone: cannot build 'no_such_net'"),
        ({}, _broken_json, "annotations.json is not valid JSON"),
        ({}, _no_images, "the train split is empty (0 usable images"),
    ],
    ids=["unknown backbone", "truncated annotations", "no images"],
)
def test_create_study_refuses_what_every_trial_would_fail_on(
    tmp_path: Path, sqlite_url: str, model: dict, damage: Any, message: str
) -> None:
    spec = _tiny(tmp_path, **model)
    if damage is not None:
        damage(tmp_path)
    args = ["create-study", str(spec), "--storage", sqlite_url, "--data-root", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert message in line
    assert not (tmp_path / "sweeps.db").exists()  # nothing stored
