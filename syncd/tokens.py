"""API tokens: created by `syncd token create`, stored as SHA-256 hashes only."""

from __future__ import annotations

import argparse
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.config import Settings
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.db.tables import ApiToken


@dataclass(frozen=True)
class TokenIdentity:
    id: int
    name: str
    is_staff: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_token(session: Session, *, name: str = "", is_staff: bool = False) -> tuple[int, str]:
    """Store a new token; return its id and the key, which is never stored nor shown again."""
    key = secrets.token_hex(20)
    row = ApiToken(name=name, key_hash=hash_key(key), is_staff=is_staff)
    session.add(row)
    session.flush()
    return row.id, key


def authenticate(session: Session, key: str) -> TokenIdentity | None:
    """The identity of a valid, unrevoked token key, or None."""
    row = session.execute(
        select(ApiToken).where(ApiToken.key_hash == hash_key(key), ApiToken.revoked.is_(None))
    ).scalar_one_or_none()
    if row is None:
        return None
    return TokenIdentity(id=row.id, name=row.name, is_staff=row.is_staff)


def revoke_token(session: Session, token_id: int) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked is not None:
        return False
    row.revoked = datetime.now(UTC)
    return True


def token_command(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            if args.token_command == "create":
                _, key = create_token(session, name=args.name, is_staff=args.staff)
                print(key)
                return 0
            if args.token_command == "revoke":
                if revoke_token(session, args.id):
                    print(f"token {args.id} revoked")
                    return 0
                print(f"syncd: no active token with id {args.id}")
                return 1
            for row in session.execute(select(ApiToken).order_by(ApiToken.id)).scalars():
                state = "revoked" if row.revoked else "active"
                staff = "staff" if row.is_staff else "read"
                print(f"{row.id}\t{staff}\t{state}\t{row.created:%Y-%m-%d}\t{row.name}")
            return 0
    finally:
        engine.dispose()
