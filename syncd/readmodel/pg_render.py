"""The nested versions of syncd/readmodel/fragments.py built by PostgreSQL (json_build_object,
in C) rather than in Python: decoding every version's and target's jsonb in Python made a
first Spack import half again as long. The same keys, values and orders as
fragments.nested_version / nested_target (a Spack default target's composed metadata too); the
text differs only in its whitespace.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from syncd.readmodel import pg_items, sql_store

# A version's derived fields, as fragments.version_metadata takes them from its metadata.
_PG_OBJECT = (
    "CASE WHEN jsonb_typeof(v.metadata -> 'KEY') = 'object' THEN v.metadata -> 'KEY' "
    "ELSE '{}'::jsonb END"
)
_PG_ARRAY = (
    "CASE WHEN jsonb_typeof(v.metadata -> 'KEY') = 'array' THEN v.metadata -> 'KEY' "
    "ELSE '[]'::jsonb END"
)
# fragments.target_wire_metadata: a Spack default target's metadata composed from its
# version (tv) and package (tp). A release's version_info is built directly; a branch
# version's through json_strip_nulls, which drops its absent keys.
_PG_DEFAULT_TARGET = """NOT t.is_local AND NOT tv.is_local
        AND t.target_type = 'build_variant' AND t.target_name = 'default'
        AND t.metadata = '{}'::jsonb AND jsonb_typeof(tv.metadata) = 'object'
        AND tv.metadata -> 'downloads' IS NOT NULL"""
_PG_DEFAULT_METADATA = """json_build_object(
        'downloads', tv.metadata -> 'downloads',
        'dependencies', CASE WHEN jsonb_typeof(tv.dependencies) = 'array'
            THEN tv.dependencies ELSE '[]'::jsonb END,
        'patches', coalesce(tv.metadata -> 'patches', '[]'::jsonb),
        'categories', CASE WHEN jsonb_typeof(tp.categories) = 'array'
            THEN tp.categories ELSE '[]'::jsonb END,
        'version_info', CASE WHEN coalesce(tv.metadata ->> 'branch', '') = ''
            AND tv.metadata -> 'repositories' IS NULL
        THEN json_build_object('downloads', tv.metadata -> 'downloads', 'version', tv.version)
        ELSE json_strip_nulls(json_build_object(
            'branch', CASE WHEN coalesce(tv.metadata ->> 'branch', '') <> ''
                THEN tv.metadata -> 'branch' END,
            'downloads', CASE WHEN tv.metadata -> 'downloads' <> '[]'::jsonb
                OR coalesce(tv.metadata ->> 'branch', '') = ''
                THEN tv.metadata -> 'downloads' END,
            'repositories', tv.metadata -> 'repositories',
            'version', tv.version)) END)"""
# A target as fragments.nested_target; METADATA is its metadata's expression. Two objects
# under a CASE rather than a CASE for the metadata: the stored jsonb of the other targets
# is then written as it is, not cast to json and parsed again.
_PG_TARGET = """json_build_object(
        'uuid', replace(t.uuid::text, '-', ''),
        'target_type', t.target_type,
        'target_name', t.target_name,
        'target_subtype', t.target_subtype,
        'location', t.location,
        'metadata', METADATA,
        'gpu_architectures', t.gpu_architectures)"""
_PG_TARGET_OBJECT = (
    f"CASE WHEN {_PG_DEFAULT_TARGET} THEN "
    + _PG_TARGET.replace("METADATA", _PG_DEFAULT_METADATA)
    + " ELSE "
    + _PG_TARGET.replace("METADATA", "t.metadata")
    + " END"
)
# Each package's versions (`{versions}` picks them), each with its targets (`{targets}`
# picks them), aggregated once per version rather than by a subquery per version. Each
# object is built below an OFFSET 0 (which keeps the planner from moving the expression into
# the aggregate): the aggregates' sorts then carry the object and its sort keys, not every
# column it is built from (an EESSI import sorted its 118,807 targets with their versions'
# metadata: 166 MB in memory, now 50 MB).
_VERSIONS = (
    """
SELECT vj.package_id, json_agg(vj.j ORDER BY vj.sort_index DESC, vj.module_version, vj.id)::text
    AS versions
FROM (SELECT v.package_id, v.sort_index, v.module_version, v.id, json_build_object(
    'uuid', replace(v.uuid::text, '-', ''),
    'version', v.version,
    'module_version', v.module_version,
    'release_date', to_char(v.release_date, 'YYYY-MM-DD'),
    'targets', coalesce(tg.targets, '[]'::json),
    'module', """
    + _PG_OBJECT.replace("KEY", "module")
    + """,
    'modulename', coalesce(CASE WHEN jsonb_typeof(v.metadata -> 'module') = 'object'
        THEN v.metadata -> 'module' ->> 'full_module_name' END, ''),
    'required_modules', """
    + _PG_ARRAY.replace("KEY", "required_modules")
    + """,
    'extensions', """
    + _PG_ARRAY.replace("KEY", "extensions")
    + """,
    'toolchain', """
    + _PG_OBJECT.replace("KEY", "toolchain")
    + """,
    'toolchain_families_compatibility', """
    + _PG_ARRAY.replace("KEY", "toolchain_families_compatibility")
    + """
) AS j
FROM version AS v LEFT JOIN (
    SELECT x.version_id, json_agg(x.j ORDER BY x.created DESC, x.id) AS targets
    FROM (SELECT t.version_id, t.created, t.id, """
    + _PG_TARGET_OBJECT
    + """ AS j
        FROM target AS t JOIN version AS tv ON tv.id = t.version_id
        JOIN package AS tp ON tp.id = tv.package_id
        WHERE {targets} OFFSET 0) AS x
    GROUP BY x.version_id
) AS tg ON tg.version_id = v.id
WHERE {versions} OFFSET 0) AS vj GROUP BY vj.package_id
"""
)
# A whole EESSI catalog's targets sort in ~170 MB (they spilled to disk at 64 MB).
SORT_MEMORY = "256MB"


def versions_json(
    conn: Connection, catalog_id: int | None, package_ids: Sequence[int]
) -> dict[int, str]:
    """The `versions` JSON text of those of `package_ids` that have versions (with
    `catalog_id`: of every package of that catalog)."""
    return sql_store.versions_json(conn, _VERSIONS, catalog_id, package_ids)


def store(conn: Connection, catalog_id: int, package_ids: Sequence[int] | None, fmt: int) -> int:
    """Insert the rows of the catalog's `package_ids` (None: all its packages): fragments
    and items (pg_items); returns how many rows were inserted."""
    statement, params = pg_items.store_statement(_VERSIONS, catalog_id, package_ids, fmt)
    # A whole catalog's versions and targets are sorted for their aggregates: in memory
    # rather than in temporary files (a quarter of the statement's time on a Spack import).
    previous = conn.execute(text("SELECT current_setting('work_mem')")).scalar_one()
    conn.execute(text("SELECT set_config('work_mem', :mem, true)"), {"mem": SORT_MEMORY})
    # Right after a first import the tables have no statistics: the planner expects a few
    # rows and joins each of a whole catalog's targets to its version and package by an
    # index lookup (a sixth of the statement's time on a Spack import) instead of hashing.
    joins = conn.execute(text("SELECT current_setting('enable_nestloop')")).scalar_one()
    if package_ids is None:
        conn.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    stored = int(conn.execute(statement, params).rowcount)
    # (A failure aborts the transaction, which undoes the local settings by itself.)
    conn.execute(text("SELECT set_config('work_mem', :mem, true)"), {"mem": previous})
    conn.execute(text("SELECT set_config('enable_nestloop', :on, true)"), {"on": joins})
    return stored
