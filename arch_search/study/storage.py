"""Where a study lives: its storage (``storage_for``: SQLite or PostgreSQL, with heartbeats
and the retry of dead trials, ``arch_search.study.recovery``),
and ``locate``: a run directory of ``python -m arch_search run`` (its study.db, and the study
name in its study.json) or a storage URL. Shared by run, report, dashboard and export, so that
each reads a run the same way and fails with the same one-line errors.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy.event
import sqlalchemy.exc
from optuna.storages import RDBStorage

from arch_search.study.recovery import Requeue
from arch_search.study.run_dir import RunDir


def storage_for(url: str, heartbeat_interval: int = 60, grace_period: int | None = None, max_retry: int = 3) -> RDBStorage:
    """An RDB storage with heartbeats: a trial whose worker stops beating for
    ``grace_period`` seconds (default 2 x interval) is failed and re-queued (``Requeue``)."""
    url = _postgres_driver(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since v2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs = dict(
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period or 2 * heartbeat_interval,
            heartbeat_stale_trial_callback=Requeue(max_retry),
        )
        for attempt in range(1, SCHEMA_ATTEMPTS):
            try:
                return _immediate(RDBStorage(url, **kwargs))
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
                # Workers started together on a new database race to create its schema: the
                # loser fails on a duplicate row (alembic_version) or table; a moment later the
                # schema is there to open. Any other database error is raised at once.
                if not (isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)):
                    raise
                time.sleep(0.5 * attempt)
        return _immediate(RDBStorage(url, **kwargs))  # the last try: its error is the caller's


def _immediate(storage: RDBStorage) -> RDBStorage:
    """On SQLite, every transaction ``BEGIN IMMEDIATE`` (SQLAlchemy's recipe for pysqlite): it
    takes the database's write lock when it starts, so a read-then-write is atomic across
    processes. SQLite ignores ``SELECT ... FOR UPDATE``, which Optuna relies on when a worker
    claims a queued trial (WAITING -> RUNNING): without this, two workers that start together
    can both claim the same queued reference and the second fails with "Cannot tell a COMPLETE
    trial". PostgreSQL locks the row itself."""
    engine = storage.engine
    if engine.dialect.name != "sqlite":
        return storage

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # pysqlite's own deferred BEGIN off: the "begin" event below decides

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the hooks (the schema's) are not reused
    return storage


SCHEMA_ATTEMPTS = 5  # tries to open a storage whose schema another worker may be creating


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy's default for that
    scheme is psycopg 3, while the ``postgres`` extra installs psycopg2."""
    if not url.startswith("postgresql://"):
        return url
    try:
        import psycopg  # noqa: F401

        return url
    except ImportError:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]


class RunError(ValueError):
    """A run directory, storage or study that cannot be opened (the CLI prints ``error: ...``)."""


# ---- where the study is -------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    url: str  # Optuna storage URL
    study_name: str | None  # None only from locate(..., require_study=False) on a storage of several studies
    run_dir: Path | None  # where pareto.csv / study.json live, if the study came from a run directory


def locate(target: str, study: str | None = None, require_study: bool = True) -> Location:
    """The storage URL and study name of ``target``: a run directory (its study.db, and the
    name in its study.json) or a storage URL (``sqlite:///...``, ``postgresql://...``), where
    ``study`` may be left out when the storage holds exactly one study (or, with
    ``require_study=False``, any number: the name is then None unless there is one)."""
    run_dir = None
    if "://" in target:
        url = target
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
            raise RunError(f"no SQLite file at {url[len('sqlite:///'):]} (from {url})")  # Optuna would create one
    else:
        run_dir = Path(target)
        if not run_dir.is_dir():
            raise RunError(f"no such run directory: {target}")
        files = RunDir(run_dir)
        if not files.study_db.is_file():
            raise RunError(f"{target} has no {files.study_db.name} (not a run directory of `python -m arch_search run`)")
        url = f"sqlite:///{files.study_db.resolve()}"
        if study is None and files.study_json.is_file():
            study = json.loads(files.study_json.read_text()).get("study_name")
    try:
        names = optuna.get_all_study_names(storage=storage_for(url))
    except Exception as e:  # a URL that no driver or server answers
        raise RunError(f"cannot open storage {shown(url)}: {str(e).strip().splitlines()[0]}") from None
    if study is None:
        if len(names) != 1 and not require_study:
            return Location(url, None, run_dir)
        if len(names) != 1:
            raise RunError(f"{shown(target)} holds {len(names)} studies ({', '.join(names) or 'none'}): name one with --study")
        study = names[0]
    elif study not in names:
        raise RunError(f"study {study!r} not in {shown(url)}; studies there: {', '.join(names) or 'none'}")
    return Location(url, study, run_dir)


def shown(url: str) -> str:
    """The storage URL without its password (for messages and the page)."""
    from sqlalchemy.engine import make_url

    if "://" not in url:  # a run directory
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def load_study(loc: Location) -> optuna.Study:
    study = optuna.load_study(study_name=loc.study_name, storage=storage_for(loc.url))
    if len(study.directions) != 2:
        raise RunError(f"study {loc.study_name!r} has {len(study.directions)} objective(s); a search has two "
                          "(proxy accuracy, latency ms)")
    return study
