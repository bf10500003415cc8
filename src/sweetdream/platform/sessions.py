"""Server-side sessions in Redis, with the session id rotated at sign-in (no session fixation)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.scope.state import ScopeState
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_ROTATE = "rotate_session_id"
_STORE_FAILED = "session_store_failed"


class RotatingSessionBackend(ServerSideSessionBackend):
    async def store_in_message(self, scope_session: ScopeSession, message: Message, connection: ASGIConnection) -> None:
        state = connection.scope.setdefault("state", {})
        if state.get(_STORE_FAILED):
            return  # the error page for it goes out as it is, without a session
        # A visitor with nothing in their session gets no cookie and costs no Redis write (Litestar
        # would otherwise store an empty session for every cookieless request: bots included).
        if scope_session is not Empty and not scope_session and not connection.cookies.get(self.config.key):
            return
        try:
            await super().store_in_message(scope_session, message, connection)
        except (RedisConnectionError, RedisTimeoutError):
            # Redis is down. The session is saved as the response starts, so Litestar already
            # counts the response as started, but nothing was sent: say so, and its exception
            # handling answers with the "we'll be right back" page instead of dropping the request.
            state[_STORE_FAILED] = True
            ScopeState.from_scope(connection.scope).response_started = False
            raise

    def get_session_id(self, connection: ASGIConnection) -> str:
        state = connection.scope.setdefault("state", {})
        rotated = state.get(_ROTATE)
        if rotated is True:
            state[_ROTATE] = self.generate_session_id()
            return str(state[_ROTATE])
        if isinstance(rotated, str):
            return rotated
        return super().get_session_id(connection)


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend


async def rotate_session_id(connection: ASGIConnection, config: SessionConfig) -> str:
    """Forget the old session id and issue a new one when this response is sent; returns the new id
    (sign-in records it in the user's index of sessions, see accounts/sessions.py)."""
    old = connection.cookies.get(config.key)
    if old and old != "null":
        await config.get_store_from_app(connection.app).delete(old)
    new_id = secrets.token_hex(config.session_id_bytes)
    connection.scope.setdefault("state", {})[_ROTATE] = new_id
    return new_id
