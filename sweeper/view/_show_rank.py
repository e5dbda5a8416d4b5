"""``sweeper rank`` as one call: a sweep's ranking, or a verify study's configs, in the
format asked for, with the selection picture when wanted."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import optuna
from rich.console import Console

from sweeper.after import source_study_name, verify_report
from sweeper.define import StudySpec
from sweeper.errors import SpecError, StudyError
from sweeper.paths import DEFAULT_ARTIFACTS
from sweeper.rank import Ranking, Rule, rank_study
from sweeper.view._rank_table import print_ranking
from sweeper.view._verify_table import print_verify

Format = Literal["table", "csv", "json"]


def show_rank(
    study: optuna.Study,
    spec: StudySpec,
    console: Console,
    fmt: Format = "table",
    *,
    top: int = 10,
    wide: bool = False,
    by: Rule | None = None,
    penalty: float | None = None,
    tolerance: float | None = None,
    plot: Path | None = None,
    artifacts: Path = DEFAULT_ARTIFACTS,
) -> None:
    """Print ``study``'s ranking (table, CSV or JSON on stdout); a verify study ranks its
    configs over their re-runs. ``plot`` also draws val against gap-split H-mean there and
    uploads the picture to the study's artifacts in ``artifacts``.

    Raises:
        SpecError: CSV asked of a verify study.
        StudyError: a picture of a study with nothing to draw.
    """
    if source_study_name(study) is not None:
        if fmt == "csv":
            raise SpecError(
                f"--format csv: study {study.study_name} is a verify study; use table or json"
            )
        report = verify_report(study, spec)
        if fmt == "json":
            print(report.to_json())
        else:
            print_verify(report, console, wide=wide)
        return
    ranking = rank_study(study, spec, by=by, penalty=penalty, tolerance=tolerance)
    if plot is not None:
        _plot(ranking, study, spec.ranking.gap_source, plot, artifacts)
    if fmt == "json":
        print(ranking.to_json(top))
    elif fmt == "csv":
        print(ranking.to_csv(top), end="")
    else:
        print_ranking(ranking, console, top, wide=wide)


def _plot(
    ranking: Ranking, study: optuna.Study, gap_split: str, path: Path, artifacts: Path
) -> None:
    from optuna.artifacts import upload_artifact

    from storage import open_artifact_store
    from sweeper.view._selection_plot import selection_png

    try:
        selection_png(ranking, path, gap_split)
    except ValueError as e:
        raise StudyError(str(e)) from e
    store = open_artifact_store(artifacts)
    upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
