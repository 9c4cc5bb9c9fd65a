"""What every endpoint gets injected: the process-wide context, a session per request, and
the caller's identity (DRF TokenAuthentication semantics).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
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


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def get_session(request: Request) -> Iterator[Session]:
    session = get_context(request).session_factory()
    try:
        yield session
    finally:
        session.close()


Context = Annotated[ApiContext, Depends(get_context)]
DbSession = Annotated[Session, Depends(get_session)]


def _identify(request: Request, session: Session) -> TokenIdentity | None:
    """The token's identity; None for an anonymous caller. A header that names a token which
    does not authenticate is a 401 on every method, reads included (DRF does the same)."""
    header = request.headers.get("authorization", "")
    parts = header.split()
    if not parts or parts[0].lower() != "token":
        return None  # another scheme (or none): anonymous, as DRF's TokenAuthentication
    if len(parts) == 1:
        raise errors.not_authenticated("Invalid token header. No credentials provided.")
    if len(parts) > 2:
        raise errors.not_authenticated(
            "Invalid token header. Token string should not contain spaces."
        )
    identity = authenticate(session, parts[1])
    if identity is None:
        raise errors.not_authenticated(errors.INVALID_TOKEN)
    return identity


def require_reader(request: Request, session: DbSession) -> TokenIdentity | None:
    identity = _identify(request, session)
    if identity is None and not get_context(request).settings.anonymous_read:
        raise errors.not_authenticated()
    return identity


def require_staff(request: Request, session: DbSession) -> TokenIdentity:
    identity = _identify(request, session)
    if identity is None:
        raise errors.not_authenticated()
    if not identity.is_staff:
        raise errors.permission_denied()
    return identity


Reader = Annotated[TokenIdentity | None, Depends(require_reader)]
Staff = Annotated[TokenIdentity, Depends(require_staff)]
