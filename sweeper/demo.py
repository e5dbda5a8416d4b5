"""``sweeper demo``: a real sweep on generated data, SQLite and this machine's devices.

Everything it makes stays under ``<cwd>/sweeper-demo``: the synthetic dataset, the SQLite
database, checkpoints, pictures and worker logs.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from rich.console import Console

from storage import open_storage
from sweeper.dispatch import plan_slots, run_workers
from sweeper.ranking import rank_study
from sweeper.report import print_ranking
from sweeper.spec import StudySpec, load_spec
from sweeper.study import create_study, load_study
from trainer_core.data.synthetic import generate

__all__ = ["DEMO_DATA", "bundled_spec", "run_demo"]

DEMO_DATA = {"n_images": 64, "size": (160, 160), "text_height": (12, 24), "regions": (2, 5)}
"""What ``generate`` makes for the demo: text large enough to learn from scratch in minutes."""


def bundled_spec(name: str) -> Path:
    """A spec shipped with sweeper: ``sweeper/studies`` in a wheel, ``studies/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "studies", here.parent / "studies"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name}: not found in the installed sweeper (studies/)")


def run_demo(
    workdir: Path, procs: int = 2, gpus: str = "auto", console: Console | None = None
) -> int:
    """Generate data, create a study from the demo spec, sweep it, print the ranking.

    Returns the workers' exit code (0 when every worker finished cleanly).
    """
    console = console or Console()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    spec: StudySpec = load_spec(bundled_spec("demo.yaml"))
    # The spec's data paths are relative to the data root, here the demo directory.
    annotations = workdir / (spec.base.data.annotations or "annotations.json")
    if not annotations.exists():
        console.print(f"generating {DEMO_DATA['n_images']} images in {annotations.parent}")
        generate(annotations.parent, seed=0, **DEMO_DATA)
    url = f"sqlite:///{workdir / 'demo.db'}"
    spec = spec.renamed(f"demo-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    storage = open_storage(url)
    create_study(spec, storage)
    console.print(f"study {spec.name} in {url}: {spec.budget.n_trials} trials")
    artifacts = workdir / "artifacts"
    slots = plan_slots(gpus, procs=procs)
    code = run_workers(
        spec.name,
        url,
        slots,
        artifacts=artifacts,
        child_options={"data_root": str(workdir)},
        console=console,
    )
    study, spec = load_study(spec.name, storage)
    print_ranking(rank_study(study, spec), console, top=10)
    console.print(
        f"\nbrowse it: sweeper dashboard --storage {url} --artifacts {artifacts}"
        f"\nexport the winner: sweeper export-best {spec.name} --storage {url} -o best.yaml"
    )
    return code
