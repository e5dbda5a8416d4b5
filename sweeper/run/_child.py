"""``python -m sweeper.worker_child '<json options>'``: a child process of ``sweeper worker``.

The options are :class:`sweeper.run._options.WorkerOptions`; the storage URL comes from
``$SWEEPER_STORAGE`` (set by the parent), never from argv.
"""

from __future__ import annotations

import sys

from sweeper.run._options import WorkerOptions
from sweeper.run._worker import worker_process_main


def main(argv: list[str]) -> int:
    """Read the parent's options and run the worker loop."""
    return worker_process_main(WorkerOptions.from_json(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
