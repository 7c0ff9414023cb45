"""The embedded PostgreSQL server (pgserver wheel) kept in the data directory.

With no ``DATABASE_URL``, ``medgw serve|migrate|demo`` start (or reuse) a server whose data lives
in ``<data_dir>/pgdata``; it listens on a Unix socket only and is stopped when the last process
using it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

DATABASE_NAME = "medgw"
log = logging.getLogger(__name__)


def start(pgdata: Path, *, cleanup_mode: str | None = "stop", database: str = DATABASE_NAME) -> str:
    """Start or reuse the server in ``pgdata``; return an asyncpg SQLAlchemy URL to ``database``.

    The database is created on first use.
    """
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; the fallback is fine.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server: Any = get_server(pgdata.resolve(), cleanup_mode=cleanup_mode)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
        log.info("created database %s in %s", database, pgdata)
    info = server.get_postmaster_info()
    port = f"&port={info.port}" if info.port else ""
    return f"postgresql+asyncpg://postgres@/{database}?host={quote(str(info.socket_dir))}{port}"
