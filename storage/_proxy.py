"""run_proxy: Optuna's gRPC storage proxy in front of one database."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import optuna
from optuna.exceptions import ExperimentalWarning

from storage._errors import StorageError
from storage._open import open_storage
from storage._url import redact, resolve_url

__all__ = ["PROXY_THREADS", "run_proxy"]

PROXY_THREADS = 3
"""Requests the proxy serves at once: open_storage's pool (1 + 2 overflow), so the proxy
never holds more than 3 database connections and never waits on the pool. Further
requests queue in the proxy, which answers each in a few milliseconds."""


def run_proxy(url: str | None, host: str = "0.0.0.0", port: int = 13000) -> None:
    """Serve Optuna's gRPC storage proxy for the database at ``url`` until killed.

    Workers then use ``grpc://HOST:PORT`` as their storage URL: each holds one gRPC
    connection to the proxy instead of its own database connections, so hundreds of
    workers cost the database :data:`PROXY_THREADS` connections. The proxy caches finished
    trials, which also cuts the read load of many workers polling one study.

    Heartbeats do not pass through the proxy: run ``sweeper reap STUDY --every 60`` next to
    it so the trials of dead workers are failed and retried. The proxy has no
    authentication or TLS: keep its port on a private network.

    Args:
        url: the database (``postgresql://``, ``mysql+pymysql://``, ``sqlite:///`` for a
            single host); None reads ``$SWEEPER_STORAGE``.
        host: address to listen on; ``0.0.0.0`` for all interfaces (in a container).
        port: port to listen on.

    Raises:
        StorageError: the database cannot be opened, ``url`` is itself a proxy, or the
            port cannot be bound.

    Example:
        >>> run_proxy("postgresql://sweeper@db/sweeps", port=13000)  # doctest: +SKIP
    """
    url = resolve_url(url)
    if url.lower().startswith("grpc://"):
        raise StorageError(
            f"storage {redact(url)}: the proxy serves a database; give its SQL URL "
            "(postgresql://..., mysql+pymysql://...), not another proxy"
        )
    # Optuna recommends its cached wrapper for the proxy's backend: finished trials are
    # read once instead of on every worker's poll.
    storage = optuna.storages.get_storage(open_storage(url))
    print(f"starting the gRPC storage proxy for {redact(url)} on {host}:{port}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # experimental in optuna 5
        try:
            optuna.storages.run_grpc_proxy_server(
                storage,
                host=host,
                port=port,
                thread_pool=ThreadPoolExecutor(max_workers=PROXY_THREADS),
            )
        except RuntimeError as e:  # grpc's "Failed to bind to address ...; set GRPC_..."
            reason = str(e).split(";")[0]
            raise StorageError(
                f"storage proxy cannot listen on {host}:{port} ({reason}): is the port taken, "
                f"or {host} not an address of this machine?"
            ) from e
