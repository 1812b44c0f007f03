"""``python -m arch_search dashboard``: optuna-dashboard (Optuna's web UI) on a study's storage."""

from __future__ import annotations

import errno
import socket

import optuna

from arch_search.study.storage import RunError, locate, storage_for


def serve(target: str, host: str = "127.0.0.1", port: int = 8080, study: str | None = None) -> None:
    """Serve optuna-dashboard for ``target`` (a run directory or a storage URL) until interrupted;
    print its URL and the study's page first. ``study`` only picks the page printed: the
    dashboard shows every study in the storage."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise RunError("optuna-dashboard is not installed: pip install -e '.[dashboard]'") from None
    loc = locate(target, study, require_study=False)
    storage = storage_for(loc.url)
    check_port(host, port)
    base = f"http://{host}:{port}/dashboard/"
    page = ""
    if loc.study_name is not None:
        page = f"; study {loc.study_name!r}: {base}studies/{storage.get_study_id_from_name(loc.study_name)}"
    print(f"optuna-dashboard on {base}{page} (Ctrl-C stops it)", flush=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_server(storage, host=host, port=port)


def check_port(host: str, port: int) -> None:
    """Bind (host, port) as the dashboard's server will (IPv4, SO_REUSEADDR), then let it go: a
    port in use is a RunError before any URL is printed."""
    try:
        socket.create_server((host, port)).close()
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise RunError(f"port {port} on {host} is in use: pick another with --port") from None
        raise RunError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
