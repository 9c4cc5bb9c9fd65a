"""What every endpoint gets injected: the process-wide context, a session per request, and
the caller's identity (DRF TokenAuthentication semantics).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from syncd.api import errors
from syncd.config import Settings
from syncd.discovery import DiscoverCache
from syncd.tokens import TokenIdentity, authenticate


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    broker: Any
    adapters: dict[str, Any]
    fetcher: Any
    discover_cache: DiscoverCache

    def base_url(self, request: Request) -> str:
        """Scheme and host of absolute links: SYNCD_PUBLIC_URL, else the request's own."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")


async def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for this request. Async on purpose: every sync dependency costs a hop through
    the thread pool, and opening a session does no I/O (it connects on first use).

    Closed as soon as the handler returns, before the answer is sent (`DbSession` is
    function-scoped): a client that reads its answer slowly, or never, must not keep a
    connection of the pool, and a transaction open, while it does."""
    session = request.app.state.ctx.session_factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            # The handler left a transaction open: ending it is a round trip, off the loop.
            # On a limiter of its own, as FastAPI ends sync dependencies: behind the handler
            # threads' limiter, closes would wait for threads that wait for connections.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))
        else:
            session.close()


Context = Annotated[ApiContext, Depends(get_context)]
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def _token_key(request: Request) -> str | None:
    """The key of an `Authorization: Token <key>` header; None for an anonymous caller (no
    header, or another scheme, as DRF's TokenAuthentication). A malformed header is a 401."""
    parts = request.headers.get("authorization", "").split()
    if not parts or parts[0].lower() != "token":
        return None
    if len(parts) == 1:
        raise errors.not_authenticated("Invalid token header. No credentials provided.")
    if len(parts) > 2:
        raise errors.not_authenticated(
            "Invalid token header. Token string should not contain spaces."
        )
    return parts[1]


def _authenticate(ctx: ApiContext, key: str) -> TokenIdentity:
    with ctx.session_factory() as session:
        identity = authenticate(session, key)
    if identity is None:
        # A token that does not authenticate is a 401 on every method, reads included.
        raise errors.not_authenticated(errors.INVALID_TOKEN)
    return identity


# Scope key of the caller's identity once known: the body limit authenticates a write before
# reading its body (syncd/api/limits.py), and the endpoint's dependency reuses the answer.
IDENTITY_KEY = "syncd.identity"


async def identify(request: Request) -> TokenIdentity | None:
    """The caller: None when anonymous; a 401 ApiError for a malformed or invalid token."""
    if IDENTITY_KEY in request.scope:
        known: TokenIdentity | None = request.scope[IDENTITY_KEY]
        return known
    key = _token_key(request)
    # Anonymous callers cost no database query and no thread hop.
    identity = (
        None if key is None else await run_in_threadpool(_authenticate, request.app.state.ctx, key)
    )
    request.scope[IDENTITY_KEY] = identity
    return identity


async def require_reader(request: Request) -> TokenIdentity | None:
    identity = await identify(request)
    if identity is None and not request.app.state.ctx.settings.anonymous_read:
        raise errors.not_authenticated()
    return identity


async def require_token(request: Request) -> TokenIdentity:
    """Any valid token; what it may do is the endpoint's to check (syncd.tokens)."""
    identity = await identify(request)
    if identity is None:
        raise errors.not_authenticated()
    return identity


async def require_staff(request: Request) -> TokenIdentity:
    identity = await identify(request)
    if identity is None:
        raise errors.not_authenticated()
    if not identity.is_staff:
        raise errors.permission_denied()
    return identity


Reader = Annotated[TokenIdentity | None, Depends(require_reader)]
Staff = Annotated[TokenIdentity, Depends(require_staff)]
Caller = Annotated[TokenIdentity, Depends(require_token)]
