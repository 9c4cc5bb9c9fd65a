"""Read catalogs straight from the database: fingerprints to compare, rows to set up.

A fingerprint is every content column of a catalog's packages, versions, targets and parent
links, without ids, uuids or timestamps, so that a catalog that survived faults can be
compared with a clean import of the same data held in another database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class Fingerprint:
    packages: int
    versions: int
    targets: int
    parent_links: int
    counts: tuple[int, int, int]  # the catalog row's package/version/target counts
    digest: str

    def summary(self) -> str:
        return (
            f"{self.packages} packages, {self.versions} versions, {self.targets} targets, "
            f"{self.parent_links} parent links, digest {self.digest[:12]}"
        )


_QUERIES = {
    "packages": """
        SELECT name, description, coalesce(homepage, ''), categories, licenses, maintainers,
               is_extension, version_count, extension_count
        FROM package WHERE catalog_id = :cid ORDER BY name""",
    "versions": """
        SELECT p.name, v.version, v.module_version, v.release_date, v.dependencies,
               v.metadata, v.sort_index
        FROM version v JOIN package p ON p.id = v.package_id
        WHERE v.catalog_id = :cid ORDER BY p.name, v.version, v.module_version""",
    "targets": """
        SELECT p.name, v.version, v.module_version, t.target_type, t.target_name,
               t.target_subtype, t.location, t.metadata, t.gpu_architectures
        FROM target t JOIN version v ON v.id = t.version_id JOIN package p ON p.id = v.package_id
        WHERE t.catalog_id = :cid
        ORDER BY p.name, v.version, v.module_version, t.target_type, t.target_name,
                 t.target_subtype""",
    "parent_links": """
        SELECT c.name, p.name FROM package_parent l
        JOIN package c ON c.id = l.package_id JOIN package p ON p.id = l.parent_id
        WHERE l.catalog_id = :cid ORDER BY c.name, p.name""",
}


def _normal(value: Any) -> Any:
    # JSON columns come back as str on SQLite and as objects on PostgreSQL.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def fingerprint(engine: Engine, catalog_id: int) -> Fingerprint:
    digest = hashlib.sha256()
    sizes: dict[str, int] = {}
    with engine.connect() as conn:
        for kind, sql in _QUERIES.items():
            rows = conn.execute(text(sql), {"cid": catalog_id}).all()
            sizes[kind] = len(rows)
            for row in rows:
                digest.update(
                    json.dumps([_normal(v) for v in row], sort_keys=True, default=str).encode()
                )
                digest.update(b"\n")
        counts = conn.execute(
            text("SELECT package_count, version_count, target_count FROM catalog WHERE id = :cid"),
            {"cid": catalog_id},
        ).one()
    return Fingerprint(
        packages=sizes["packages"],
        versions=sizes["versions"],
        targets=sizes["targets"],
        parent_links=sizes["parent_links"],
        counts=(int(counts[0]), int(counts[1]), int(counts[2])),
        digest=digest.hexdigest(),
    )


def catalog_row(engine: Engine, **where: Any) -> dict[str, Any] | None:
    """The catalog row matching `name=..., version=...` etc. as a dict, or None."""
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "TRUE"
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT * FROM catalog WHERE {clause}"), where).mappings().first()
    return dict(row) if row else None


def catalog_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM catalog ORDER BY id")).mappings()]
