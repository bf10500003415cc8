"""Server-side sessions in Redis, with the session id rotated at sign-in (no session fixation).

A session is written back only when the request changed it: reading it already renewed its
lifetime in Redis (the store's get-and-renew), and the cookie is renewed on every response anyway.
Most requests (browsing, the cart badge) change nothing and so cost one Redis call, not two.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.scope.state import ScopeState
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_ROTATE = "rotate_session_id"
_STORE_FAILED = "session_store_failed"
_LOADED = "session_loaded_as"  # the session's bytes as read from the store this request


class RotatingSessionBackend(ServerSideSessionBackend):
    async def store_in_message(self, scope_session: ScopeSession, message: Message, connection: ASGIConnection) -> None:
        state = connection.scope.setdefault("state", {})
        if state.get(_STORE_FAILED):
            return  # the error page for it goes out as it is, without a session
        # A visitor with nothing in their session gets no cookie and costs no Redis write (Litestar
        # would otherwise store an empty session for every cookieless request: bots included).
        if scope_session is not Empty and not scope_session and not connection.cookies.get(self.config.key):
            return
        if self._unchanged(scope_session, connection):
            self._renew_cookie(message, self.get_session_id(connection))
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

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        if session_id := connection.cookies.get(self.config.key):
            data = await self.get(session_id, store=self.config.get_store_from_app(connection.scope["app"]))
            if data is not None:
                connection.scope.setdefault("state", {})[_LOADED] = data
                return self.deserialize_data(data)
        return {}

    def _unchanged(self, scope_session: ScopeSession, connection: ASGIConnection) -> bool:
        """The session is what was read (and renewed) at the start, under the same id."""
        state = connection.scope.setdefault("state", {})
        loaded = state.get(_LOADED)
        if loaded is None or scope_session is Empty or not scope_session or state.get(_ROTATE):
            return False
        return bool(self.serialize_data(scope_session, connection.scope) == loaded)

    def _renew_cookie(self, message: Message, session_id: str) -> None:
        """The same Set-Cookie Litestar sends with a stored session: it lives 30 days from now."""
        config = self.config
        cookie = Cookie(
            key=config.key,
            value=session_id,
            path=config.path,
            max_age=config.max_age,
            secure=config.secure,
            httponly=config.httponly,
            samesite=config.samesite,
            domain=config.domain,
        )
        MutableScopeHeaders.from_message(message).add("Set-Cookie", cookie.to_header(header=""))

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
