"""API tokens: created by `syncd token create`, stored as SHA-256 hashes only.

Waldur's permissions, as syncd's tokens map them (syncd knows no users, organisations or
roles; a token stands for whoever holds it):

- staff (Waldur's `is_staff`, the "*" scope of its permission_factory): `--staff`; may do
  every write, on every catalog and every offering;
- UPDATE_OFFERING on an offering's organisation or service provider (an owner or manager
  of the offering), which Waldur requires for `add_software_catalog`,
  `update_software_catalog` and `remove_software_catalog`: `--offering UUID` (repeatable);
  may manage the software catalogs linked to those offerings only, and reads as any token;
- any other user: a plain token; reads (and answers 403 to writes).
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import uuid as uuid_module
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from syncd.config import Settings
from syncd.db.engine import make_engine, make_session_factory, session_scope
from syncd.db.tables import ApiToken, ApiTokenOffering


@dataclass(frozen=True)
class TokenIdentity:
    id: int
    name: str
    is_staff: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_token(
    session: Session,
    *,
    name: str = "",
    is_staff: bool = False,
    offerings: Iterable[uuid_module.UUID] = (),
) -> tuple[int, str]:
    """Store a new token, granted the offerings named; return its id and the key, which is
    never stored nor shown again."""
    key = secrets.token_hex(20)
    row = ApiToken(name=name, key_hash=hash_key(key), is_staff=is_staff)
    session.add(row)
    session.flush()
    session.add_all(ApiTokenOffering(token_id=row.id, offering_uuid=o) for o in set(offerings))
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


def may_manage_offering(
    session: Session, identity: TokenIdentity, offering_uuid: uuid_module.UUID
) -> bool:
    """Whether the token may change which catalogs `offering_uuid` links (Waldur's
    UPDATE_OFFERING): staff may for every offering, other tokens for those granted them."""
    if identity.is_staff:
        return True
    granted = exists().where(
        ApiTokenOffering.token_id == identity.id, ApiTokenOffering.offering_uuid == offering_uuid
    )
    return bool(session.execute(select(granted)).scalar())


def _granted(session: Session, token_id: int) -> list[str]:
    rows = session.execute(
        select(ApiTokenOffering.offering_uuid)
        .where(ApiTokenOffering.token_id == token_id)
        .order_by(ApiTokenOffering.offering_uuid)
    )
    return [value.hex for value in rows.scalars()]


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
                _, key = create_token(
                    session, name=args.name, is_staff=args.staff, offerings=args.offering
                )
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
                offerings = _granted(session, row.id)
                kind = "staff" if row.is_staff else "offering" if offerings else "read"
                line = f"{row.id}\t{kind}\t{state}\t{row.created:%Y-%m-%d}\t{row.name}"
                if offerings:
                    line += "\t" + ",".join(offerings)
                print(line)
            return 0
    finally:
        engine.dispose()
