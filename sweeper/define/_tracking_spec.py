"""The spec's ``tracking`` section: which experiment trackers see the sweep's trials.

::

    tracking:
      wandb: {project: receipts, entity: my-team, mode: offline}
      mlflow: {tracking_uri: sqlite:///mlflow.db, experiment: receipts}
      tensorboard: {log_dir: tensorboard}
      timeout_s: 10

Each tracker's client is an optional extra (``uv sync --extra wandb`` or
``pip install 'sweeper[wandb]'``); :func:`missing_tracker_extra` says which one a spec
needs and lacks, so ``create-study`` refuses it in one line instead of every worker
failing later. The trackers themselves are :mod:`sweeper.run._tracking`.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sweeper.errors import SpecError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WandbTracking(_Strict):
    """Weights & Biases: one run per trial in ``project``, grouped by study."""

    project: str = Field(min_length=1)
    entity: str | None = Field(None, description="team or user; None = the API key's default")
    mode: Literal["online", "offline"] | None = Field(
        None,
        description="offline writes run files for `wandb sync`; None = $WANDB_MODE, else online",
    )
    dir: str | None = Field(
        None, description="where run files go; relative to the worker's --artifacts"
    )


class MlflowTracking(_Strict):
    """MLflow: one run per trial in ``experiment`` (default: the study's name)."""

    tracking_uri: str = Field(
        min_length=1, description="http(s)://server, sqlite:///file.db or a database URL"
    )
    experiment: str | None = Field(None, description="None = the study's name")


class TensorboardTracking(_Strict):
    """TensorBoard event files: ``log_dir/STUDY/trial-N``, one folder a trial."""

    log_dir: str = Field(min_length=1, description="relative to the worker's --artifacts")


class TrackingSpec(_Strict):
    """The trackers a sweep reports to; none by default.

    A tracker that is down or rejects a call never fails or slows a trial: it is disabled
    for that trial with one warning line in the worker's log.
    """

    wandb: WandbTracking | None = None
    mlflow: MlflowTracking | None = None
    tensorboard: TensorboardTracking | None = None
    timeout_s: float = Field(
        10.0, gt=0, le=600, description="the longest a trial waits on a tracker at its end"
    )

    @property
    def kinds(self) -> tuple[Tracker, ...]:
        """The trackers configured, in :data:`TRACKERS` order."""
        configured = {"wandb": self.wandb, "mlflow": self.mlflow, "tensorboard": self.tensorboard}
        return tuple(k for k in TRACKERS if configured[k] is not None)


Tracker = Literal["wandb", "mlflow", "tensorboard"]

TRACKERS: tuple[Tracker, ...] = ("wandb", "mlflow", "tensorboard")
"""The trackers; each one's extra and client module have its name."""


def missing_tracker_extra(tracking: TrackingSpec) -> str | None:
    """One line naming the first configured tracker whose client is not installed, or None.

    Example:
        >>> missing_tracker_extra(TrackingSpec())  # no tracker, nothing missing
    """
    for kind in tracking.kinds:
        if importlib.util.find_spec(kind) is None:
            return (
                f"tracking.{kind}: the {kind} client is not installed; install the extra: "
                f"uv sync --extra {kind} (or pip install 'sweeper[{kind}]')"
            )
    return None


def tracking_from_flags(flags: list[str]) -> TrackingSpec | None:
    """``sweeper train --track`` values as a tracking section; None for no flag.

    Each flag is ``wandb[:PROJECT]`` (mode from ``$WANDB_MODE``, else online),
    ``mlflow[:TRACKING_URI]`` (default ``sqlite:///mlflow.db``) or
    ``tensorboard[:LOG_DIR]`` (default ``tensorboard``); relative folders are under the
    current directory.

    Raises:
        SpecError: an unknown tracker, or one named twice.

    Example:
        >>> tracking_from_flags(["tensorboard:runs"]).tensorboard.log_dir
        'runs'
    """
    if not flags:
        return None
    section: dict[str, dict[str, str]] = {}
    for flag in flags:
        kind, _, value = flag.partition(":")
        if kind not in TRACKERS:
            raise SpecError(
                f"--track {flag!r}: use wandb[:PROJECT], mlflow[:TRACKING_URI] or "
                "tensorboard[:LOG_DIR]"
            )
        if kind in section:
            raise SpecError(f"--track {kind}: named twice")
        field, default = _FLAG_FIELDS[kind]
        section[kind] = {field: value or default}
    return TrackingSpec.model_validate(section)


_FLAG_FIELDS = {
    "wandb": ("project", "sweeper"),
    "mlflow": ("tracking_uri", "sqlite:///mlflow.db"),
    "tensorboard": ("log_dir", "tensorboard"),
}
"""What ``--track KIND:VALUE`` sets, and its value when only the kind is given."""
