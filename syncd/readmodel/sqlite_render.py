"""The nested versions of syncd/readmodel/fragments.py built and stored by SQLite (json_object,
json_group_array) rather than in Python: rendering a Spack catalog's 100,000 nested objects in
Python tripled a first import on SQLite. The same keys, values and orders as
fragments.nested_version / nested_target. SQLite before 3.44 has no ORDER BY inside an
aggregate: the rows reach json_group_array in the order of the subquery that feeds it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from syncd.readmodel import sql_store

_OBJECT = (
    "CASE WHEN json_type(v.metadata, '$.KEY') = 'object' THEN json(v.metadata -> '$.KEY') "
    "ELSE json('{}') END"
)
_ARRAY = (
    "CASE WHEN json_type(v.metadata, '$.KEY') = 'array' THEN json(v.metadata -> '$.KEY') "
    "ELSE json('[]') END"
)
# fragments.target_wire_metadata: a Spack default target's metadata composed from its
# version (tv) and package (tp); merging into {} (json_patch) drops version_info's null keys.
_TARGET_METADATA = """CASE WHEN NOT t.is_local AND NOT tv.is_local
        AND t.target_type = 'build_variant' AND t.target_name = 'default'
        AND json(t.metadata) = '{}' AND json_type(tv.metadata) = 'object'
        AND json_type(tv.metadata, '$.downloads') IS NOT NULL
    THEN json_object(
        'downloads', json(tv.metadata -> '$.downloads'),
        'dependencies', CASE WHEN json_type(tv.dependencies) = 'array'
            THEN json(tv.dependencies) ELSE json('[]') END,
        'patches', coalesce(json(tv.metadata -> '$.patches'), json('[]')),
        'categories', CASE WHEN json_type(tp.categories) = 'array'
            THEN json(tp.categories) ELSE json('[]') END,
        'version_info', json_patch('{}', json_object(
            'branch', CASE WHEN coalesce(tv.metadata ->> '$.branch', '') <> ''
                THEN tv.metadata ->> '$.branch' END,
            'downloads', CASE WHEN json(tv.metadata -> '$.downloads') <> '[]'
                OR coalesce(tv.metadata ->> '$.branch', '') = ''
                THEN json(tv.metadata -> '$.downloads') END,
            'repositories', json(tv.metadata -> '$.repositories'),
            'version', tv.version)))
    ELSE json(t.metadata) END"""
_VERSIONS = (
    """
SELECT package_id, json_group_array(json(item)) AS versions FROM (
    SELECT v.package_id, json_object(
        'uuid', v.uuid,
        'version', v.version,
        'module_version', v.module_version,
        'release_date', v.release_date,
        'targets', coalesce(json(tg.targets), json('[]')),
        'module', """
    + _OBJECT.replace("KEY", "module")
    + """,
        'modulename', coalesce(CASE WHEN json_type(v.metadata, '$.module') = 'object'
            THEN CAST(v.metadata ->> '$.module.full_module_name' AS TEXT) END, ''),
        'required_modules', """
    + _ARRAY.replace("KEY", "required_modules")
    + """,
        'extensions', """
    + _ARRAY.replace("KEY", "extensions")
    + """,
        'toolchain', """
    + _OBJECT.replace("KEY", "toolchain")
    + """,
        'toolchain_families_compatibility', """
    + _ARRAY.replace("KEY", "toolchain_families_compatibility")
    + """
    ) AS item
    FROM version AS v LEFT JOIN (
        SELECT version_id, json_group_array(json(item)) AS targets FROM (
            SELECT t.version_id, json_object(
                'uuid', t.uuid,
                'target_type', t.target_type,
                'target_name', t.target_name,
                'target_subtype', t.target_subtype,
                'location', t.location,
                'metadata', """
    + _TARGET_METADATA
    + """,
                'gpu_architectures', json(t.gpu_architectures)) AS item
            FROM target AS t JOIN version AS tv ON tv.id = t.version_id
            JOIN package AS tp ON tp.id = tv.package_id
            WHERE {targets}
            ORDER BY t.version_id, t.created DESC, t.id
        ) GROUP BY version_id
    ) AS tg ON tg.version_id = v.id
    WHERE {versions}
    ORDER BY v.package_id, v.sort_index DESC, v.module_version, v.id
) GROUP BY package_id
"""
)


def versions_json(
    conn: Connection, catalog_id: int | None, package_ids: Sequence[int]
) -> dict[int, str]:
    """The `versions` JSON text of those of `package_ids` that have versions (with
    `catalog_id`: of every package of that catalog)."""
    return sql_store.versions_json(conn, _VERSIONS, catalog_id, package_ids)


def store(conn: Connection, catalog_id: int, package_ids: Sequence[int] | None, fmt: int) -> int:
    """Insert the fragments of the catalog's `package_ids` (None: all its packages), their
    `extensions` as `[]`; returns how many rows were inserted."""
    statement, params = sql_store.store_statement(_VERSIONS, catalog_id, package_ids, fmt)
    return int(conn.execute(statement, params).rowcount)
