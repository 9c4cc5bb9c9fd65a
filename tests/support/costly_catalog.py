"""A catalog on which the API's text filters cost the database the most, made in a second.

Every package description and target location is TEXT_LENGTH characters of "a"; a substring
filter of "a" * (cap - 1) + "b" then almost matches at every position of every row, the
worst case of LIKE's matching (its work grows with the text's length times the pattern's),
so a few thousand rows stand in for the hundreds of thousands of a full EESSI stack.

    costly_catalog(engine, rows=4000)
    costly_catalog(engine, rows=400, text_length=20_000)  # 20 kB descriptions: big answers
    worst_filter(200)  # "aaaa...ab", 200 characters
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, insert, select

from syncd.db.tables import Catalog, Package, Target, Version
from syncd.readmodel.facets import refresh_facets

TEXT_LENGTH = 1990


def worst_filter(length: int) -> str:
    return "a" * (length - 1) + "b"


def costly_catalog(engine: Engine, rows: int, text_length: int = TEXT_LENGTH) -> None:
    text = "a" * text_length
    with engine.begin() as conn:
        catalog_id = conn.execute(
            insert(Catalog)
            .values(name="Costly", version="1", package_count=rows, version_count=rows)
            .returning(Catalog.id)
        ).scalar_one()
        conn.execute(
            insert(Package),
            [
                {
                    "uuid": uuid.uuid4(),
                    "catalog_id": catalog_id,
                    "name": f"p{i}",
                    "description": text,
                }
                for i in range(rows)
            ],
        )
        packages = conn.execute(select(Package.id).where(Package.catalog_id == catalog_id)).all()
        conn.execute(
            insert(Version),
            [
                {"uuid": uuid.uuid4(), "package_id": p.id, "catalog_id": catalog_id, "version": "1"}
                for p in packages
            ],
        )
        versions = conn.execute(select(Version.id).where(Version.catalog_id == catalog_id)).all()
        conn.execute(
            insert(Target),
            [
                {
                    "uuid": uuid.uuid4(),
                    "version_id": v.id,
                    "catalog_id": catalog_id,
                    "target_type": "cpu_architecture",
                    "target_name": "x86_64",
                    "location": text[:TEXT_LENGTH],  # a column of 2,000 characters
                }
                for v in versions
            ],
        )
        # The derived search text and facets, as the writers keep them: `query` reads those.
        refresh_facets(conn, catalog_id, None)
