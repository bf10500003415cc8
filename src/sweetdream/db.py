"""Database configuration: the async engine, session config and the declarative bases."""

from __future__ import annotations

from advanced_alchemy.base import UUIDAuditBase, UUIDBase, orm_registry
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy.exc import IntegrityError

from sweetdream.settings import PROJECT_ROOT, Settings

__all__ = ["UUIDAuditBase", "UUIDBase", "make_sqlalchemy_config", "metadata", "violated_constraint"]

metadata = orm_registry.metadata


def make_sqlalchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=EngineConfig(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            pool_pre_ping=False,
            hide_parameters=True,  # a database error never logs the values (emails, addresses, tokens)
        ),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        before_send_handler="autocommit",
        create_all=False,
        alembic_config=AlembicAsyncConfig(
            script_location=str(PROJECT_ROOT / "migrations"),
            script_config=str(PROJECT_ROOT / "alembic.ini"),
        ),
    )


def violated_constraint(exc: IntegrityError) -> str:
    """The name of the constraint PostgreSQL refused the statement for ("" if it did not say)."""
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        name = getattr(error, "constraint_name", None)
        if name:
            return str(name)
    return ""
