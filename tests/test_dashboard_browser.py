"""The dashboard as a person sees it: ``sweeper dashboard`` in headless Chromium.

A finished small study is built by hand (no training): three completed trials carrying the
user attributes the objective sets, per-epoch intermediate values, and a learning-curve
PNG uploaded to the artifact store the way the objective uploads it. ``sweeper dashboard``
serves it from a separate process; Debian's chromium and chromedriver render the React
app. Screenshots land in the test's tmp dir (their paths are printed; ``pytest -s``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.artifacts import upload_artifact
from optuna_dashboard import save_note

from storage import open_artifact_store, open_storage
from sweeper.define import create_study, parse_spec, suggest_params
from sweeper.run import learning_curve_png
from sweeper.trial_result import TrialResult
from tests.servers import free_port
from tests.sweeper.tiny_sweep import tiny_spec
from trainer_core.fit import EpochRecord

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WAIT_S = 20  # the first page load parses a 2 MB bundle on a 2-core machine

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)

# Trial number -> (val H-mean per epoch, gap, score): the best trial is not the last one.
TRIALS = {
    0: ([0.412, 0.538], 0.021, 0.522),
    1: ([0.455, 0.601, 0.687], 0.034, 0.658),
    2: ([0.398, 0.497], 0.012, 0.490),
}
PICTURE_TRIAL = 1


def _finished_trial(
    study: optuna.Study, spec: Any, store: Any, tmp: Path, number: int
) -> dict[str, Any]:
    """Run one trial the objective's way, without training: params, reports, attrs, picture."""
    curve, gap, score = TRIALS[number]
    trial = study.ask()
    params = suggest_params(trial, spec)
    for epoch, hmean in enumerate(curve, start=1):
        trial.report(hmean, epoch)
    best_epoch = max(range(len(curve)), key=curve.__getitem__) + 1
    val_hmean = curve[best_epoch - 1]
    attrs = {
        "val_precision": round(val_hmean + 0.05, 3),
        "val_recall": round(val_hmean - 0.04, 3),
        "val_hmean": val_hmean,
        "gap_split": "holdout",
        "gap_hmean": round(val_hmean - gap, 3),
        "gap": gap,
        "score": score,
        "best_epoch": best_epoch,
        "epochs_run": len(curve),
        "stop_reason": "completed",
        "images_per_s": 41.5,
        "peak_memory_mb": 212.0,
        "device": "cpu",
        "host": "node-a",
        "worker_id": f"node-a/{number}",
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    save_note(trial, TrialResult.from_attrs(attrs).note())  # as the objective writes it
    artifact_id = None
    if number == PICTURE_TRIAL:
        history = [
            EpochRecord(epoch, 0.9 / epoch, params["lr"] / epoch, 1.0, 40.0, h + 0.05, h - 0.04, h)
            for epoch, h in enumerate(curve, start=1)
        ]
        png = learning_curve_png(history, tmp / "learning_curve.png", f"trial {number}")
        artifact_id = upload_artifact(
            artifact_store=store, file_path=str(png), study_or_trial=trial
        )
    study.tell(trial, score)
    return {"params": params, "attrs": attrs, "artifact_id": artifact_id}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite study of three completed trials, one with a learning-curve picture."""
    tmp_path = tmp_path_factory.mktemp("study")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    artifacts = tmp_path / "artifacts"
    spec = parse_spec(tiny_spec("browsed", n_trials=3))
    study = create_study(spec, open_storage(url))
    store = open_artifact_store(artifacts)
    trials = {n: _finished_trial(study, spec, store, tmp_path, n) for n in TRIALS}
    return {
        "url": url,
        "artifacts": artifacts,
        "study_id": study._study_id,
        "trials": trials,
    }


@pytest.fixture(scope="module")
def dashboard(finished_study: dict[str, Any]) -> Iterator[str]:
    """``sweeper dashboard`` in its own process; yields its base URL once it answers."""
    port = free_port()
    log_path = finished_study["artifacts"].parent / "dashboard.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sweeper",
                "dashboard",
                "--storage",
                finished_study["url"],
                "--port",
                str(port),
                "--artifacts",
                str(finished_study["artifacts"]),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"sweeper dashboard exited {process.returncode}:\n{log_path.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{base}/api/meta", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"sweeper dashboard did not answer in 30 s:\n{log_path.read_text()}"
                    )
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian chromium through Debian's chromedriver; nothing is downloaded."""
    # Selenium Manager would fetch a browser or driver; the explicit paths skip it, and
    # offline mode keeps it from trying should a path ever go missing.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")
        driver = _start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def _start_chromium(profile: Path) -> Any:
    """A headless chromium session with a fresh profile and no network of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def _page_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def test_trial_table_shows_user_attributes(
    dashboard: str, finished_study: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # optuna-dashboard 0.21 draws its trial table on the "trial selection" page; the
    # /trialTable route renders nothing in this version.
    browser.get(f"{dashboard}/dashboard/studies/{finished_study['study_id']}/smartSelection")
    headers = ("UserAttribute gap", "UserAttribute score", "UserAttribute val_hmean")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: all(h in _page_text(d) for h in headers), "no user-attribute columns"
    )
    # The objective carries its name, not optuna-dashboard's "Objective 0".
    assert "Objective 0" not in _page_text(browser)
    meta = f"{dashboard}/api/studies/{finished_study['study_id']}?after=0"
    with urllib.request.urlopen(meta, timeout=10) as response:
        assert json.load(response)["objective_names"] == ["score"]
    table = browser.find_element(By.TAG_NAME, "table")
    rows = {
        row.find_element(By.TAG_NAME, "td").text: row.text
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert sorted(rows) == [str(n) for n in TRIALS]
    for number, (_, gap, score) in TRIALS.items():
        cells = rows[str(number)].split()
        assert "Complete" in cells
        assert str(gap) in cells and str(score) in cells, rows[str(number)]
    # Show the score column in the screenshot: the table scrolls sideways.
    [score_header] = [
        th
        for th in table.find_elements(By.TAG_NAME, "th")
        if th.get_attribute("textContent").startswith(headers[1])
    ]
    browser.execute_script(
        "arguments[0].scrollIntoView({block: 'center', inline: 'center'})", score_header
    )
    shot = tmp_path / "trial_table.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")


def test_trial_page_shows_attributes_and_picture(
    dashboard: str, finished_study: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    study_id = finished_study["study_id"]
    artifact_id = finished_study["trials"][PICTURE_TRIAL]["artifact_id"]
    browser.get(f"{dashboard}/dashboard/studies/{study_id}/trials?numbers={PICTURE_TRIAL}")

    def loaded_picture(driver: Any) -> Any:
        for img in driver.find_elements(By.TAG_NAME, "img"):
            src = img.get_attribute("src") or ""
            loaded = driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", img
            )
            if artifact_id in src and loaded:
                return img
        return None

    img = WebDriverWait(browser, WAIT_S).until(loaded_picture, "the artifact image did not load")
    # The PNG is 600x360 (6 x 3.6 in at 100 dpi); the browser decoded it at that size.
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 600
    text = _page_text(browser)
    attrs = finished_study["trials"][PICTURE_TRIAL]["attrs"]
    for key in ("gap", "score", "val_hmean", "best_epoch", "worker_id"):
        assert f"{key} {attrs[key]}" in text, key
    # The trial's note renders as Markdown: its P/R/H table, with the gap row.
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "td")]
    assert "val − holdout" in cells, cells
    with urllib.request.urlopen(img.get_attribute("src"), timeout=5) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read(8) == PNG_SIGNATURE
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    shot = tmp_path / "trial_page.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
