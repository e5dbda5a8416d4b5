"""Where a study's checkpoints and logs live under the artifacts directory, safely named.

A study's files are keyed by its name *and* a random id stored on the study at create time
(:data:`sweeper.define._study.UUID_ATTR`), so a study deleted and re-created under the same name
never resumes the old one's checkpoints::

    ARTIFACTS/checkpoints/<name>-<uuid12>/trial-<root>/last.pt
    ARTIFACTS/logs/<name>-<uuid12>-<host>-<pid>-worker-<slot>.log

``<name>`` is the study name reduced to letters, digits, ``.``, ``_`` and ``-``: a name
written into the database by other means (``../../evil``) cannot leave the artifacts
directory, and every path is checked to be inside it. Studies made before the id existed
use their storage id instead (``<name>-id<N>``). A folder a trial attribute records (its
``checkpoint_dir``, a promoted trial's source) is read through :func:`recorded_folder` only:
anyone who can write trial attributes (the gRPC proxy has no login) must not point a worker
at files outside the artifacts directory.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from sweeper.errors import StudyError

__all__ = [
    "DEFAULT_ARTIFACTS",
    "checkpoints_dir",
    "find_trial_checkpoints",
    "inside",
    "log_file",
    "recorded_folder",
    "relative_to_artifacts",
    "remove_study_files",
    "safe_component",
    "trial_checkpoints",
]

DEFAULT_ARTIFACTS = Path("sweeper-artifacts")
"""Where workers keep checkpoints, pictures and logs unless ``--artifacts`` says otherwise;
every command that reads them defaults to the same folder."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(text: str) -> str:
    """``text`` as one harmless path component: no separators, no leading dots, 80 chars."""
    cleaned = _UNSAFE.sub("_", text).strip("._-")[:80]
    return cleaned or "study"


def inside(artifacts: Path, path: Path) -> Path:
    """``path``, resolved, once it is checked to lie under ``artifacts``.

    Raises:
        StudyError: the path would leave the artifacts directory.
    """
    root = Path(artifacts).resolve()
    resolved = Path(path).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise StudyError(f"{path}: outside the artifacts directory {root}; refusing to use it")
    return resolved


def recorded_folder(recorded: object, artifacts: Path | None = None) -> Path:
    """The folder a trial attribute records, relative to the artifacts directory (as
    :func:`relative_to_artifacts` writes it), once checked to stay inside it.

    Args:
        recorded: the attribute's value.
        artifacts: the artifacts directory, for commands that use the files: the folder is
            then resolved (symlinks too) and returned under it. None checks the text alone
            (for commands that only pass the value on): relative, printable, without ``..``.

    Raises:
        StudyError: not a relative folder inside the artifacts directory.
    """
    text = recorded if isinstance(recorded, str) else ""
    relative = Path(text)
    if not text or not text.isprintable() or relative.is_absolute() or ".." in relative.parts:
        where = f" {Path(artifacts).resolve()}" if artifacts is not None else ""
        raise StudyError(
            f"recorded folder {recorded!r}: outside the artifacts directory{where}; "
            "refusing to use it"
        )
    if artifacts is None:
        return relative
    return inside(artifacts, Path(artifacts) / relative)


def checkpoints_dir(artifacts: Path, key: str) -> Path:
    """The folder holding one ``trial-<root>`` folder per retry chain of the study."""
    return inside(artifacts, Path(artifacts) / "checkpoints" / safe_component(key))


def trial_checkpoints(artifacts: Path, key: str, root: int) -> Path:
    """Where retry chain ``root`` of study ``key`` (:func:`sweeper.define.study_key`) keeps
    ``last.pt`` and ``best.pt``: every retry of a trial resumes from the same folder, and a
    study re-created under an old name (a new key) starts with none."""
    return checkpoints_dir(artifacts, key) / f"trial-{root}"


def relative_to_artifacts(path: Path, artifacts: Path) -> str:
    """``path`` relative to the artifacts directory (absolute if it lies elsewhere): how a
    trial records its checkpoint folder, so any node mounting the artifacts finds it."""
    resolved, root = Path(path).resolve(), Path(artifacts).resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def log_file(artifacts: Path, key: str, node: str, slot: int) -> Path:
    """One worker slot's log on one node (``node``: host and parent pid)."""
    name = f"{safe_component(key)}-{safe_component(node)}-worker-{slot}.log"
    return inside(artifacts, Path(artifacts) / "logs" / name)


def find_trial_checkpoints(artifacts: Path, study_name: str, root: int) -> Path | None:
    """The checkpoint folder of retry chain ``root`` of the one study named ``study_name``
    under ``artifacts`` (None if there is none yet, or several studies of that name)."""
    pattern = f"{safe_component(study_name)}-*/trial-{root}"
    found = [p for p in (Path(artifacts) / "checkpoints").glob(pattern) if p.is_dir()]
    return found[0] if len(found) == 1 else None


def remove_study_files(artifacts: Path, key: str, pictures: Iterable[str] = ()) -> int:
    """Delete the study's checkpoints and logs, and the artifact-store files ``pictures``
    (artifact ids); return how many bytes they held."""
    targets = [Path(artifacts) / "checkpoints" / safe_component(key)]
    logs = Path(artifacts) / "logs"
    if logs.is_dir():
        targets += sorted(logs.glob(f"{safe_component(key)}-*.log"))
    targets += [Path(artifacts) / "store" / safe_component(p) for p in pictures]
    freed = 0
    for target in targets:
        target = inside(artifacts, target)
        files = target.rglob("*") if target.is_dir() else [target]
        freed += sum(_size(f) for f in files)
        # A worker still running may rename or drop a file mid-walk (last.pt.tmp ->
        # last.pt): what is already gone needs no deleting.
        if target.is_dir():
            shutil.rmtree(target, onerror=_gone_is_fine)
        else:
            target.unlink(missing_ok=True)
    return freed


def _size(path: Path) -> int:
    """Bytes of ``path``; 0 for a folder or a file that is gone."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except FileNotFoundError:
        return 0


def _gone_is_fine(function: object, path: str, exc_info: tuple) -> None:
    if not issubclass(exc_info[0], FileNotFoundError):
        raise exc_info[1]
