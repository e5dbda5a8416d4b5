"""The artifact store: checkpoints' pictures and learning curves next to the study."""

from __future__ import annotations

from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore

__all__ = ["open_artifact_store"]


def open_artifact_store(artifacts: Path) -> FileSystemArtifactStore:
    """The artifact store under ``artifacts/store`` (workers write it, the dashboard reads it)."""
    path = Path(artifacts) / "store"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))
