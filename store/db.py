"""Engines and migrations. SQLite (WAL) is the embedded default; PostgreSQL is production."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets readers run beside the one writer; busy_timeout makes
            # concurrent writers wait for the lock instead of failing.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


_WRITE_LOCKS: WeakKeyDictionary[Engine, threading.RLock] = WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def one_writer(engine: Engine) -> contextlib.AbstractContextManager[Any]:
    """SQLite takes one writer at a time. The threads of one process take turns here,
    in order, instead of in SQLite's busy handler, which sleeps up to 100 ms per try
    (measured: most of the simulation's time went there). Other processes still wait
    through busy_timeout; PostgreSQL needs no turn-taking."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _LOCKS_LOCK:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.RLock()
    return lock


# The newest migration's revision: what a worker checks the database against at start,
# without loading Alembic and the migration scripts into every worker (23 MiB with
# Mako; tests/test_persistence.py checks it is Alembic's head).
SCHEMA_HEAD = "0017"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: escape % in passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the schema (``aidflow db upgrade``)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The database's schema revision (Alembic's table, read directly); None if none."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()
    if len(rows) > 1:
        raise RuntimeError(f"the database has several schema heads: {', '.join(rows)}")
    return rows[0] if rows else None


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def schema_problem(url: str) -> str | None:
    """None when the database is migrated to this code's schema; else why not, in a line."""
    try:
        current = current_revision(url)
    except Exception as e:  # unreachable database, bad URL
        return f"cannot read the database: {type(e).__name__}: {str(e).splitlines()[0]}"
    head = SCHEMA_HEAD
    if current == head:
        return None
    if current is None:
        return "the database has no aidflow schema yet: run `aidflow db upgrade`"
    return (
        f"the database schema is at {current}, this aidflow needs {head}: run `aidflow db upgrade`"
    )
