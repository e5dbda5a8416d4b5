"""``python -m sweeper.worker_child '<json options>'``: a child process of ``sweeper worker``.

The storage URL comes from ``$SWEEPER_STORAGE`` (set by the parent), never from argv.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from storage import HeartbeatSettings
from sweeper.worker import WorkerLimits, worker_process_main


def main(argv: list[str]) -> int:
    """Parse the parent's JSON options and run the worker loop."""
    options = json.loads(argv[0])
    heartbeat = options.get("heartbeat")
    return worker_process_main(
        options["study_name"],
        None,
        artifacts=Path(options["artifacts"]),
        worker_index=options["worker_index"],
        limits=WorkerLimits(
            options.get("n_trials"),
            options.get("timeout_s"),
            options.get("storage_wait_s", WorkerLimits.storage_wait_s),
        ),
        data_root=Path(options["data_root"]) if options.get("data_root") else None,
        device=options.get("device"),
        threads=options.get("threads"),
        heartbeat=HeartbeatSettings(**heartbeat) if heartbeat else None,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
