"""The embedded PostgreSQL server (pgserver wheel) kept in the data directory.

With no ``DATABASE_URL``, ``medgw serve|migrate|demo`` start (or reuse) a server whose data lives
in ``<data_dir>/pgdata``; it listens on a Unix socket only and is stopped when the last process
using it exits.

The server's superuser only sets up two roles (ACCESS.md, least privilege): ``medgw_owner``
owns the database and its tables and runs the migrations; ``medgw_app``, the role the gateway
connects as, gets its grants from the migrations (INSERT and SELECT only on the audit log).
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

DATABASE_NAME = "medgw"
OWNER_ROLE = "medgw_owner"
APP_ROLE = "medgw_app"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Urls:
    """asyncpg SQLAlchemy URLs of one database, one per role."""

    superuser: str
    owner: str
    """Owns the tables; migrations run as this role."""
    app: str
    """What the gateway connects as: no DDL, no UPDATE/DELETE/TRUNCATE on the audit log."""


# Run by the superuser on every start; idempotent. Roles are cluster-wide; a database made before
# the roles existed (tables owned by the superuser) is handed over to the owner here, since only
# a superuser may do that.
_ROLES = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
    CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
END $$;
"""
_HANDOVER = f"""
DO $$ DECLARE item record; BEGIN
  FOR item IN
    SELECT format('ALTER TABLE %s OWNER TO {OWNER_ROLE}', c.oid::regclass) AS sql
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
      AND c.relowner <> '{OWNER_ROLE}'::regrole
    UNION ALL
    SELECT format('ALTER FUNCTION %s OWNER TO {OWNER_ROLE}', p.oid::regprocedure)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND p.proowner <> '{OWNER_ROLE}'::regrole
  LOOP
    EXECUTE item.sql;
  END LOOP;
END $$;
"""


def _psql(server: Any, sql: str, database: str | None = None) -> str:
    """Run ``sql`` as the superuser; an error raises (pgserver's own psql() ignores errors)."""
    from pgserver._commands import POSTGRES_BIN_PATH

    psql = [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA"]
    return subprocess.run(
        [*psql, server.get_uri(database)],
        input=sql,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def start(
    pgdata: Path, *, cleanup_mode: str | None = "stop", database: str = DATABASE_NAME
) -> Urls:
    """Start or reuse the server in ``pgdata``; return the URLs of ``database`` per role.

    The database (owned by ``medgw_owner``) and the two roles are created on first use.
    Raises ``subprocess.CalledProcessError`` if the set-up SQL fails.
    """
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; the fallback is fine.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server: Any = get_server(pgdata.resolve(), cleanup_mode=cleanup_mode)
    _psql(server, _ROLES)
    owner = _psql(
        server, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'"
    ).strip()
    if not owner:
        _psql(server, f'CREATE DATABASE "{database}" OWNER {OWNER_ROLE};')
        log.info("created database %s in %s", database, pgdata)
    elif owner != OWNER_ROLE:
        _psql(server, f'ALTER DATABASE "{database}" OWNER TO {OWNER_ROLE};')
        _psql(server, _HANDOVER, database)
        log.info("database %s in %s handed over to %s", database, pgdata, OWNER_ROLE)
    info = server.get_postmaster_info()
    port = f"&port={info.port}" if info.port else ""
    query = f"/{database}?host={quote(str(info.socket_dir))}{port}"

    def url(role: str) -> str:
        return f"postgresql+asyncpg://{role}@{query}"

    return Urls(superuser=url("postgres"), owner=url(OWNER_ROLE), app=url(APP_ROLE))


@contextmanager
def temporary(prefix: str) -> Iterator[Urls]:
    """A throwaway server in a temporary directory (named ``prefix…``), its URLs per role; at
    the end of the block it is stopped, then its directory removed (removed first, PostgreSQL
    would run on until it noticed, up to a minute later)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        pgdata = Path(tmp) / "pgdata"
        urls = start(pgdata, cleanup_mode="delete")
        try:
            yield urls
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pgserver.postgres_server import get_server

                get_server(pgdata.resolve(), cleanup_mode="delete").cleanup()
