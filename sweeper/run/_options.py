"""What ``sweeper worker`` hands each child process: one frozen type, one JSON argument.

The parent (:func:`sweeper.run._supervisor.run_workers`) fills in each child's slot and passes
:meth:`WorkerOptions.to_json` on its command line; the child
(``python -m sweeper.run._child``) reads it back with :meth:`WorkerOptions.from_json`.
The storage URL is not in it: it travels in the environment, where ``ps`` does not show it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from storage import STORAGE_WAIT_S, HeartbeatSettings


@dataclass(frozen=True)
class WorkerLimits:
    """A worker process's own limits, on top of the study's budget."""

    n_trials: int | None = None
    """Trials this process runs at most."""
    timeout_s: float | None = None
    """Seconds after which this process starts no trial."""
    storage_wait_s: float = STORAGE_WAIT_S
    """How long the storage may stay unreachable before the worker gives up (exit 3)."""


@dataclass(frozen=True)
class WorkerOptions:
    """Everything a worker child needs but the storage URL."""

    study_name: str
    artifacts: Path
    """Checkpoints, pictures and logs; shared by the nodes."""
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    data_root: Path | None = None
    """Where the spec's relative data and weight files are found on this node."""
    heartbeat: HeartbeatSettings | None = None
    """None: the defaults, with the spec's retry limit."""
    worker_index: int = 0
    """The child's slot on its node (its GPU, or its share of the cores)."""
    threads: int | None = None
    """torch's intra-op threads for a CPU child; None leaves torch's default."""
    devices: float = 1.0
    """The devices the child's slot holds, which its trials' device-seconds count."""
    study_key: str | None = None
    """The study's folder name under the artifacts (:func:`sweeper.define.study_key`), read
    once by the parent; None: the child reads it once."""

    def for_slot(self, index: int, threads: int | None, devices: float = 1.0) -> WorkerOptions:
        """These options for the child in slot ``index``."""
        return replace(self, worker_index=index, threads=threads, devices=devices)

    def to_json(self) -> str:
        """One JSON object; :meth:`from_json` reads it back equal."""
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> WorkerOptions:
        """The options :meth:`to_json` wrote."""
        raw: dict[str, Any] = json.loads(text)
        heartbeat = raw.pop("heartbeat")
        data_root = raw.pop("data_root")
        return cls(
            artifacts=Path(raw.pop("artifacts")),
            limits=WorkerLimits(**raw.pop("limits")),
            data_root=None if data_root is None else Path(data_root),
            heartbeat=None if heartbeat is None else HeartbeatSettings(**heartbeat),
            **raw,
        )
