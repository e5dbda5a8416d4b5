"""``sweeper predict`` and ``sweeper evaluate`` on real tiny trials: the trial's own
post-processing, the formats read back, ensembles of verify re-runs and of the top trials,
the split's H-mean the sweep recorded, and bad input in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from storage import open_storage
from sweeper.after import ModelSource, enqueue_verify, evaluate_folder, verify_study_name
from sweeper.cli import app
from sweeper.define import load_study
from sweeper.run import WorkerContext, WorkerLimits, run_worker
from sweeper.trial_result import TrialResult
from sweeper.tuned_postprocess import TunedPostprocess, tuned_attr_key
from tests.sweeper.tiny_sweep import make_data, run_trials, tiny_spec
from trainer_core.checkpoint import load_checkpoint
from trainer_core.config import TrainConfig
from trainer_core.data import make_splits, read_ufo
from trainer_core.data.detection_files import read_detections

runner = CliRunner()
NAME = "pred"
BROKEN = Path(__file__).parents[2] / "trainer_core" / "data" / "broken"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two completed one-epoch trials, and two seed re-runs of the best in NAME.verify."""
    root = make_data(tmp_path_factory.mktemp("predict"))
    url = f"sqlite:///{root / 'sweep.db'}"
    spec = tiny_spec(NAME, n_trials=2, epochs=1, pruner={"kind": "none"})
    spec["base"]["postprocess"] = {"thresh": 0.2, "box_thresh": 0.3}
    run_trials(root, url, spec, n_trials=2)
    storage = open_storage(url)
    study, loaded = load_study(NAME, storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    enqueue_verify(study, loaded, top=1, seeds=2)
    ctx = WorkerContext(verify_study_name(NAME), root / "artifacts", "test/v", data_root=root)
    assert run_worker(verify_study_name(NAME), url, ctx, WorkerLimits()) == 2
    return root, url


def _run(root: Path, url: str, *args: str):
    return runner.invoke(app, [*args, "--storage", url, "--artifacts", str(root / "artifacts")])


def _images(root: Path) -> Path:
    return root / "tiny-data" / "images"


def _three_images(root: Path, folder: Path) -> Path:
    """A folder with three of the sweep's images: enough where the model is the point."""
    folder.mkdir()
    for image in sorted(_images(root).iterdir())[:3]:
        shutil.copy(image, folder / image.name)
    return folder


@pytest.mark.parametrize("fmt", ["ufo", "icdar", "csv"])
def test_predict_writes_a_format_its_readers_read(
    sweep: tuple[Path, str], tmp_path: Path, fmt: str
) -> None:
    root, url = sweep
    out = tmp_path / ("out" if fmt == "icdar" else f"out.{fmt}")
    done = _run(
        root, url, "predict", NAME, "--trial", "1", "--images", str(_images(root)),
        "-o", str(out), "--format", fmt, "--batch", "3",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "trial 1 of pred" in done.output and "images/s" in done.output
    assert "post-processing: trial 1's config" in done.output
    back = read_detections(out, fmt, _images(root))  # type: ignore[arg-type]
    assert sorted(s.image.name for s in back) == sorted(p.name for p in _images(root).iterdir())
    assert sum(len(s.polygons) for s in back) > 0


def test_predict_on_the_shared_receipts_skips_a_corrupt_image(
    sweep: tuple[Path, str], shared_data: Path, tmp_path: Path
) -> None:
    root, url = sweep
    folder = tmp_path / "receipts"
    shutil.copytree(shared_data / "sroie_receipts" / "img", folder)
    shutil.copy(BROKEN / "icdar" / "images" / "corrupt.jpg", folder / "corrupt.jpg")
    out = tmp_path / "receipts.json"
    done = _run(root, url, "predict", NAME, "--images", str(folder), "-o", str(out))
    assert done.exit_code == 0, done.output
    assert "corrupt.jpg: image unreadable" in done.output
    assert "9 images" in done.output and "1 skipped" in done.output
    written = json.loads(out.read_text())["images"]
    assert sorted(written) == sorted(
        p.name for p in (shared_data / "sroie_receipts" / "img").iterdir()
    )


def test_tuned_postprocessing_applies_and_set_overrides_it(
    sweep: tuple[Path, str], tmp_path: Path
) -> None:
    root, url = sweep
    storage = open_storage(url)
    study, _ = load_study(NAME, storage)
    tuned = TunedPostprocess(1, {"box_thresh": 0.99}, 0, 0, "holdout", 0, 0, "s", 1, "m")
    study.set_user_attr(tuned_attr_key(1), tuned.to_attr())
    try:
        out = tmp_path / "tuned.csv"
        images = _three_images(root, tmp_path / "images")
        args = ["--images", str(images), "-o", str(out), "--format", "csv"]
        done = _run(root, url, "predict", NAME, "--trial", "1", *args)
        assert "trial 1's tuned values" in done.output, done.output
        assert all(not row.split(",", 1)[1] for row in out.read_text().splitlines()[1:])
        done = _run(
            root, url, "predict", NAME, "--trial", "1", *args, "--set", "postprocess.box_thresh=0.3"
        )
        assert "with --set" in done.output, done.output
        assert any(row.split(",", 1)[1] for row in out.read_text().splitlines()[1:])
    finally:
        study.set_user_attr(tuned_attr_key(1), None)


def test_an_ensemble_of_one_is_the_trial_and_reruns_average(
    sweep: tuple[Path, str], tmp_path: Path
) -> None:
    root, url = sweep
    images = ["--images", str(_three_images(root, tmp_path / "images"))]
    best = _run(root, url, "predict", NAME, "--best", *images, "-o", str(tmp_path / "best.json"))
    top1 = _run(
        root,
        url,
        "predict",
        "--ensemble-top",
        "1",
        NAME,
        *images,
        "-o",
        str(tmp_path / "top1.json"),
    )
    assert best.exit_code == 0 and top1.exit_code == 0, best.output + top1.output
    assert (tmp_path / "best.json").read_text() == (tmp_path / "top1.json").read_text()

    verify = _run(
        root, url, "predict", "--ensemble", verify_study_name(NAME), *images,
        "-o", str(tmp_path / "verify.json"),
    )  # fmt: skip
    assert verify.exit_code == 0, verify.output
    assert "ensemble of the 2 re-runs (seeds)" in verify.output
    top2 = _run(
        root,
        url,
        "predict",
        NAME,
        "--ensemble-top",
        "2",
        *images,
        "-o",
        str(tmp_path / "top2.json"),
    )
    assert "ensemble of the top 2 trials" in top2.output, top2.output


def test_evaluate_gives_the_h_mean_the_sweep_recorded_for_the_split(
    sweep: tuple[Path, str], tmp_path: Path
) -> None:
    root, url = sweep
    study, _ = load_study(NAME, open_storage(url))
    for trial in study.trials:
        result = TrialResult.from_attrs(trial.user_attrs)
        best = root / "artifacts" / str(result.checkpoint_dir) / "best.pt"
        cfg = TrainConfig.model_validate_json(load_checkpoint(best)["config"])
        # The val split's annotations alone, as a UFO file of their own.
        names = {s.image.name for s in make_splits(cfg.data).val}
        everything = json.loads((root / "tiny-data" / "annotations.json").read_text())
        val = {"images": {k: v for k, v in everything["images"].items() if k in names}}
        labels = tmp_path / f"val-{trial.number}.json"
        labels.write_text(json.dumps(val))
        done = _run(
            root, url, "evaluate", NAME, "--trial", str(trial.number),
            "--images", str(_images(root)), "--annotations", str(labels),
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        line = next(ln for ln in done.output.splitlines() if ln.startswith("H-mean"))
        assert line.startswith(f"H-mean {100 * result.val_hmean:.2f} "), line
        assert f"precision {100 * result.val_precision:.2f}" in line
        assert len(read_ufo(labels, _images(root))) == len(names)
        source = ModelSource(NAME, trial.number, storage=url, artifacts=root / "artifacts")
        metrics = evaluate_folder(source, _images(root), labels).metrics
        assert metrics.hmean == pytest.approx(result.val_hmean, abs=1e-12)
        assert metrics.recall == pytest.approx(result.val_recall, abs=1e-12)
        assert metrics.n_pred > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["predict", NAME, "--trial", "9"], "has no trial 9"),
        (["predict", "nosuch"], "nosuch"),
        (["predict", NAME, "--checkpoint", "x.pt"], "name the model once"),
        (["predict", "--ensemble", NAME], "not a verify study"),
        (["predict", NAME, "--set", "optimizer.lr=1"], "--set optimizer.lr"),
        (["predict", NAME, "--set", "postprocess.thresh=3"], "postprocess.thresh"),
        (["predict", "--checkpoint", "missing.pt"], "missing.pt"),
    ],
)
def test_bad_input_is_one_line(
    sweep: tuple[Path, str], tmp_path: Path, args: list[str], says: str
) -> None:
    root, url = sweep
    out = tmp_path / "out.json"
    done = _run(root, url, *args, "--images", str(_images(root)), "-o", str(out))
    assert done.exit_code == 2, done.output
    assert says in done.output and len(done.output.strip().splitlines()) == 1
    assert not out.exists()


def test_an_unknown_format_is_refused_by_name(sweep: tuple[Path, str], tmp_path: Path) -> None:
    root, url = sweep
    images = ["--images", str(_images(root)), "--format", "xml"]
    for args in (["predict", "-o", str(tmp_path / "o")], ["evaluate", "--annotations", "a"]):
        done = _run(root, url, *args, NAME, *images)
        assert done.exit_code == 2 and "'--format'" in done.output and "'xml'" in done.output


def test_a_missing_images_folder_is_named(sweep: tuple[Path, str], tmp_path: Path) -> None:
    root, url = sweep
    done = _run(
        root,
        url,
        "predict",
        NAME,
        "--images",
        str(tmp_path / "nope"),
        "-o",
        str(tmp_path / "o.json"),
    )
    assert done.exit_code == 2 and "nope: not a folder of images" in done.output


def test_evaluate_reads_icdar_labels_with_their_dont_care_regions(
    sweep: tuple[Path, str], shared_data: Path
) -> None:
    root, url = sweep
    toy = shared_data / "icdar2015_toy"
    done = _run(
        root, url, "evaluate", NAME, "--images", str(toy / "images"),
        "--annotations", str(toy / "annotations"), "--format", "icdar",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    # 82 boxes, 61 of them ### (don't care): 21 ground truths to find, on 10 images.
    assert "10 of 10 annotated images" in done.output
    assert "21 ground truths" in done.output
