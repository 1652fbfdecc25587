"""Turn asyncpg errors into StoreError messages an operator can act on, never showing the password.

Messages name the server as `CODEBOT_DB=postgresql://user:***@host:port/db`. Driver texts are only
quoted where PostgreSQL composes them from names (constraints, roles), never from values or the DSN.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from core.store.base import StoreError

SCHEMES = ("postgresql://", "postgres://")

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_AUTH = {"28000", "28P01"}
_READ_ONLY = "25006"
_NO_DATABASE = "3D000"
_TOO_MANY = {"53300", "53400"}
_NO_SPACE = {"53100"}
_STARTING = {"57P03"}  # the server is starting up, shutting down or in recovery
_ADMIN_SHUTDOWN = {"57P01", "57P02"}
_TIMEOUTS = {"57014", "55P03"}  # statement or lock timeout
_INSUFFICIENT_PRIVILEGE = "42501"


def is_postgres_url(value: str) -> bool:
    """Return whether a CODEBOT_DB value names a PostgreSQL server rather than a SQLite file."""
    return value.strip().lower().startswith(SCHEMES)


def redact(dsn: str) -> str:
    """Return the DSN with any password replaced by ***, for messages and logs."""
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
    except ValueError:
        return "postgresql://***"  # unparseable: show nothing of it
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "&".join(
        "password=***" if kv.lower().startswith("password=") else kv for kv in parts.query.split("&") if kv
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _where(dsn: str) -> str:
    return f"CODEBOT_DB={redact(dsn)}"


def read_only_error(dsn: str) -> StoreError:
    """Build the error for a database that refuses writes (a hot standby, a read-only role or setting)."""
    return StoreError(
        f"the PostgreSQL database is read-only ({_where(dsn)}); "
        "point CODEBOT_DB at the primary, not a standby or a read-only role"
    )


def connect_error(exc: BaseException, dsn: str) -> StoreError:
    """Map a failure to open a connection (or the pool) to a StoreError naming the fix."""
    if isinstance(exc, asyncpg.PostgresError):
        return translate(exc, dsn)
    if isinstance(exc, socket.gaierror):
        return StoreError(f"cannot resolve the PostgreSQL server's host name ({_where(dsn)}); check the host")
    if isinstance(exc, OSError | TimeoutError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return StoreError(
            f"cannot reach the PostgreSQL server ({_where(dsn)}); check that it is running and reachable"
        )
    if isinstance(exc, ValueError):  # asyncpg rejects a malformed DSN before connecting
        return StoreError(f"CODEBOT_DB is not a valid PostgreSQL URL ({_where(dsn)})")
    return StoreError(f"cannot connect to PostgreSQL ({_where(dsn)}): {type(exc).__name__}")


def translate(exc: BaseException, dsn: str) -> StoreError:
    """Map an error raised while using the database to a short StoreError."""
    state = getattr(exc, "sqlstate", None) or ""
    if state in _AUTH:
        return StoreError(f"PostgreSQL refused the login ({_where(dsn)}); check the user name and password")
    if state == _NO_DATABASE:
        return StoreError(f"the PostgreSQL database does not exist ({_where(dsn)}); create it first")
    if state == _READ_ONLY:
        return read_only_error(dsn)
    if state == _INSUFFICIENT_PRIVILEGE:
        return StoreError(f"the PostgreSQL role lacks a privilege codebot needs ({_where(dsn)})")
    if state in _TOO_MANY:
        return StoreError(
            f"the PostgreSQL server has no connection to spare ({_where(dsn)}); "
            "lower CODEBOT_DB_POOL_SIZE or raise the server's max_connections"
        )
    if state in _NO_SPACE:
        return StoreError(f"the PostgreSQL server's disk is full ({_where(dsn)}); free some space")
    if state in _TIMEOUTS or isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        return StoreError(f"PostgreSQL did not answer in time ({_where(dsn)}); try again shortly")
    if state in _STARTING | _ADMIN_SHUTDOWN or isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | OSError,
    ):
        return StoreError(f"lost the connection to PostgreSQL ({_where(dsn)}); try again shortly")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        # The constraint's name, never the row's values (those are in the error's detail, not shown).
        name = getattr(exc, "constraint_name", None) or type(exc).__name__
        return StoreError(f"the store rejected an invalid record ({name})")
    return StoreError(f"database error ({type(exc).__name__}, SQLSTATE {state or 'none'})")
