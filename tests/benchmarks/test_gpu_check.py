"""benchmarks/gpu_check.py: the CPU rehearsal runs every section a GPU run will run, and one
section's failure never loses another's figures.

The rehearsal is what keeps the first minutes on a lent GPU from going to a typo or a
missing import: CI runs it with the tiny plan, and the parts that need CUDA must say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sections import Section, SectionReport, Skip, exit_code, run_sections

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
SECTIONS = [
    "data",
    "machine",
    "train_step",
    "loader",
    "validation",
    "oom_retry",
    "worker_sweep",
]


def _blocks(report: str) -> dict[str, str]:
    """The report's text by section name (each block starts ``## N. title`` then ``name``)."""
    blocks = {}
    for block in report.split("\n## ")[1:]:
        name = block.split("`")[1]
        blocks[name] = block
    return blocks


def _table_rows(block: str) -> list[list[str]]:
    """The cells of every table row in ``block``, header and rule lines left out."""
    rows = [ln.strip("|").split(" | ") for ln in block.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in row] for row in rows]


@pytest.mark.slow  # seven sections and three sweeper processes: minutes on a loaded 2-core CPU
def test_cpu_rehearsal_runs_every_section_and_says_what_needs_cuda(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--cpu-rehearsal",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    report = (out / "report.md").read_text()
    assert proc.returncode == 0, proc.stdout + proc.stderr + report

    summary = json.loads((out / "summary.json").read_text())
    status = {s["name"]: (s["status"], s["reason"]) for s in summary["sections"]}
    assert list(status) == SECTIONS and summary["pending"] == []
    oom, why = status.pop("oom_retry")
    assert oom == "skipped" and why.startswith(
        "no CUDA device: a real CUDA out-of-memory needs one "
        "(tests/sweeper/test_oom_retry.py checks the retry with an injected error); "
        "rehearsed: the study, the worker and the trial's result (4 x 1)"
    )
    assert set(status.values()) == {("ok", "")}

    blocks = _blocks(report)
    assert list(blocks) == SECTIONS
    for name in SECTIONS:  # every section shows its table, the skipped one what it ran
        assert _table_rows(blocks[name]), name
    assert "**skipped**: no CUDA device" in blocks["oom_retry"]
    [_, oom_trial] = _table_rows(blocks["oom_retry"])
    assert oom_trial[1:4] == ["COMPLETE", "0", "4 x 1 -> 4 x 1"]

    steps = _table_rows(blocks["train_step"])
    assert steps[0][:5] == ["backbone", "px", "batch", "precision", "channels_last"]
    measured = {(r[0], r[3], r[4]) for r in steps[1:] if r[5].replace(".", "").isdigit()}
    assert {("resnet18", p, cl) for p in ("fp32", "bf16") for cl in ("off", "on")} <= measured
    assert ("efficientnet_b4", "fp32", "off") in measured
    fp16 = [r for r in steps if r[3] == "fp16"]
    assert fp16 and all(r[5].startswith("skipped: fp16 with a GradScaler needs CUDA") for r in fp16)

    machine = dict(r[:2] for r in _table_rows(blocks["machine"]))
    assert machine["GPU"].startswith("skipped: ")
    assert machine["efficientnet_b4"] == "yes"  # the large backbone builds with no download

    loader = _table_rows(blocks["loader"])
    assert loader[0][2] == "workers" and [r[2] for r in loader[1:]] == ["1", "2"]
    assert all(r[5].endswith("%") for r in loader[1:])  # the share of the epoch spent waiting

    sweep = blocks["worker_sweep"]
    trials = [r for r in _table_rows(sweep)[1:]]
    assert [r[1] for r in trials] in (["COMPLETE", "COMPLETE"], ["COMPLETE", "PRUNED"])
    assert all(r[4].startswith("cpu") and float(r[6].replace(",", "")) > 0 for r in trials)
    assert "PRUNED" in sweep or "rungs at epochs 1 of 2" in sweep
    assert "- skipped: each child saw exactly its GPU (no GPU (--gpus cpu))" in sweep
    assert "$ sweeper worker --study gpu-check-sweep" in (out / "run.log").read_text()


def test_a_failing_section_is_recorded_and_the_next_one_still_runs(tmp_path: Path) -> None:
    def broken(report: SectionReport) -> None:
        report.table(["figure"]).add("measured before the failure")
        raise RuntimeError("a typo the GPU would have found")

    def stuck(report: SectionReport) -> None:
        time.sleep(60)  # one long call: the limit's signal must still stop it
        report.note("slept to the end")

    def no_cuda(report: SectionReport) -> None:
        raise Skip("needs CUDA")

    def wrong(report: SectionReport) -> None:
        report.check("the trial completed", False, "FAIL")
        raise Skip("the rest needs CUDA")  # what did run broke: that is a failure

    def fine(report: SectionReport) -> None:
        report.table(["figure"]).add("measured after")
        report.check("it ran", True)

    sections = [
        Section("broken", "Broken", broken),
        Section("stuck", "Stuck", stuck),
        Section("no_cuda", "Needs CUDA", no_cuda),
        Section("wrong", "A failed check", wrong),
        Section("fine", "Fine", fine),
    ]
    results = run_sections(sections, tmp_path, "# test", budget_s=10, grace_s=0)

    got = {r.name: r for r in results}
    assert [r.name for r in results] == [s.name for s in sections]
    assert got["broken"].status == "failed"
    assert got["broken"].reason == "RuntimeError: a typo the GPU would have found"
    assert "raise RuntimeError" in (got["broken"].traceback or "")
    assert "measured before the failure" in got["broken"].markdown
    assert got["stuck"].status == "failed" and got["stuck"].reason.startswith("SectionTimeout")
    assert "slept to the end" not in got["stuck"].markdown
    assert (got["no_cuda"].status, got["no_cuda"].reason) == ("skipped", "needs CUDA")
    assert (got["wrong"].status, got["wrong"].reason) == (
        "failed",
        "check failed: the trial completed",
    )
    assert got["fine"].status == "ok" and "measured after" in got["fine"].markdown
    assert exit_code(results) == 1
    assert exit_code([got["no_cuda"], got["fine"]]) == 0

    report = (tmp_path / "report.md").read_text()
    assert report.index("## 1. Broken") < report.index("## 5. Fine")
    assert "a typo the GPU would have found" in report and "measured after" in report
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["status"] for s in summary["sections"]] == [
        "failed",
        "failed",
        "skipped",
        "failed",
        "ok",
    ]
    assert summary["exit_code"] == 1
