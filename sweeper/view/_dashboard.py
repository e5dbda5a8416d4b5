"""``sweeper dashboard``: optuna-dashboard on the sweep's storage and artifact store."""

from __future__ import annotations

from pathlib import Path

from optuna_dashboard import run_server

from storage import open_artifact_store, open_storage, redact, resolve_url
from sweeper.paths import DEFAULT_ARTIFACTS


def run_dashboard(
    storage_url: str | None,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifacts: Path = DEFAULT_ARTIFACTS,
) -> None:
    """Serve the dashboard until interrupted. Bound to localhost unless ``host`` says otherwise:
    it has no authentication."""
    storage = open_storage(storage_url)
    print(
        f"optuna-dashboard on {redact(resolve_url(storage_url))}: http://{host}:{port}/", flush=True
    )
    run_server(storage, host=host, port=port, artifact_store=open_artifact_store(artifacts))
