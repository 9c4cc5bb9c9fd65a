"""SQLAlchemy 2 tables of syncd.

Rows have an integer primary key (joins, bulk writes) and a public `uuid` (the API's
identity). Package, version and target rows also carry `catalog_id` (denormalised) so that a
sync can read and delete a whole catalog's rows with one indexed statement per kind, and a
`content_hash` so that a refresh can tell changed rows from unchanged ones without
comparing every column.
"""

from __future__ import annotations

import uuid as uuid_module
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so that Alembic migrations are the same on PostgreSQL and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")
# BIGINT identity on PostgreSQL; SQLite needs exactly INTEGER for its rowid alias.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _now() -> datetime:
    return datetime.now(UTC)


def _local_flag() -> Any:
    """`is_local`: True on a row made by hand through the API (syncd/service/hand_writes.py),
    which syncs leave alone (syncd/sync/local_rows.py). The server default lets the sync's
    own INSERT and COPY statements, which never name the column, write False."""
    return mapped_column(Boolean, default=False, server_default=false(), nullable=False)


def _local_index(table: str) -> Index:
    """A partial index of a catalog's local rows: a sync asks whether there are any (usually
    none) and finds them without reading the catalog's other rows."""
    return Index(
        f"ix_{table}_local",
        "catalog_id",
        postgresql_where=text("is_local"),
        sqlite_where=text("is_local"),
    )


class _Identified:
    """The identity every API-visible row has: an integer key for joins and bulk writes, a
    public uuid, and creation/modification stamps. sort_order keeps them the first columns,
    as the migrations create them."""

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True, sort_order=-4)
    uuid: Mapped[uuid_module.UUID] = mapped_column(
        Uuid, unique=True, default=uuid_module.uuid4, nullable=False, sort_order=-3
    )
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, sort_order=-2)
    modified: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=_now, onupdate=_now, sort_order=-1
    )


class Catalog(_Identified, Base):
    __tablename__ = "catalog"
    __table_args__ = (
        UniqueConstraint("name", "version", "catalog_type", name="uq_catalog_name_version_type"),
        # Names that differ only in case are one catalog name (syncd.names; migration 0009).
        Index(
            "uq_catalog_lower_name_version_type",
            text("lower(name)"),
            "version",
            "catalog_type",
            unique=True,
        ),
    )
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(50))
    catalog_type: Mapped[str] = mapped_column(String(20), default="binary_runtime")
    source_url: Mapped[str] = mapped_column(String(2000), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    auto_update_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_update_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_successful_update: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    update_errors: Mapped[str] = mapped_column(Text, default="")
    # Kept current by the sync engine so lists need no count query per row.
    package_count: Mapped[int] = mapped_column(Integer, default=0)
    version_count: Mapped[int] = mapped_column(Integer, default=0)
    target_count: Mapped[int] = mapped_column(Integer, default=0)
    # Conditional-request validators (ETag/Last-Modified per URL) of the last good sync.
    upstream_validators: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Hash of the last synced snapshot's catalog-level fields.
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    # The tick time at which the scheduler last had update_catalog confirmed by the broker
    # (migration 0003). Later than last_update_attempt means no worker has started that
    # update yet, so the scheduler does not pile up another (syncd/scheduler/). Scheduler
    # bookkeeping only: not part of the API representation.
    update_enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When upstream made the data this catalog holds (migration 0006; EESSI's timestamp,
    # Spack's last_update, else the files' Last-Modified), to the second. An update whose
    # snapshot is older is refused unless forced (syncd/service/staleness.py); NULL =
    # unknown, nothing is refused. Not part of the API representation.
    upstream_snapshot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Package(_Identified, Base):
    __tablename__ = "package"
    __table_args__ = (
        UniqueConstraint("catalog_id", "name", name="uq_package_catalog_name"),
        Index("ix_package_name_lower", text("lower(name)")),
        # `o=name` / `o=-name` (migration 0014): read in order, ties by id sorted per name.
        Index("ix_package_name", "name"),
        Index("ix_package_modified", "modified"),  # o=-modified (migration 0019)
        # A filtered list's matched ids to their catalog and sort keys without reading the
        # rows (migration 0022; SQLite finds a row by its id directly).
        Index(
            "ix_package_sort_keys", "id", postgresql_include=["catalog_id", "name", "modified"]
        ).ddl_if(dialect="postgresql"),
        # A catalog's packages in id order, merged with facet ranges to count an offering
        # page (migration 0023; syncd/api/offering_page.py).
        Index("ix_package_catalog_id", "catalog_id", "id").ddl_if(dialect="postgresql"),
        # PostgreSQL-only (migration 0002): JSONB containment for the category/license filters.
        Index("ix_package_categories_gin", "categories", postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
        Index("ix_package_licenses_gin", "licenses", postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
        _local_index("package"),
    )
    catalog_id: Mapped[int] = mapped_column(ForeignKey("catalog.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    homepage: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    licenses: Mapped[list[str]] = mapped_column(JSONType, default=list)
    maintainers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Migration 0015; a server default so statements that do not name it still insert.
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, default=dict, server_default=text("'{}'")
    )
    is_extension: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    # Migration 0024: the hash of the package's versions and targets as the sync wrote them
    # (syncd/sync/versions_hash.py); NULL: unknown, the next sync stages them all.
    versions_hash: Mapped[str | None] = mapped_column(String(32), nullable=True, default=None)
    # Kept by the sync engine: what list pages show without a count per row.
    version_count: Mapped[int] = mapped_column(Integer, default=0)
    extension_count: Mapped[int] = mapped_column(Integer, default=0)
    is_local: Mapped[bool] = _local_flag()


class PackageParent(Base):
    """An extension package's link to a parent package of the same catalog."""

    __tablename__ = "package_parent"
    __table_args__ = (Index("ix_package_parent_parent_id", "parent_id"),)

    package_id: Mapped[int] = mapped_column(
        ForeignKey("package.id", ondelete="CASCADE"), primary_key=True
    )
    parent_id: Mapped[int] = mapped_column(
        ForeignKey("package.id", ondelete="CASCADE"), primary_key=True
    )
    catalog_id: Mapped[int] = mapped_column(
        ForeignKey("catalog.id", ondelete="CASCADE"), index=True
    )


class PackageReadModel(Base):
    """A package's embedded part of the list object (versions with their targets, and
    extensions) as JSON text, rendered by its writer (syncd/readmodel/), so a list page
    concatenates it instead of reading nested rows. `format`: the renderer's FORMAT."""

    __tablename__ = "package_read_model"

    # No foreign keys (migration 0025: their per-row checks cost an import ~0.3 s): the
    # trigger package_derived_delete deletes a deleted package's rows in the same statement.
    package_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    catalog_id: Mapped[int] = mapped_column(IdType, index=True)
    format: Mapped[int] = mapped_column(Integer)
    extensions: Mapped[str] = mapped_column(Text)
    versions: Mapped[str] = mapped_column(Text)
    # The whole list object around its catalog's fields (syncd/readmodel/items.py).
    item_head: Mapped[str | None] = mapped_column(Text, nullable=True)
    item_tail: Mapped[str | None] = mapped_column(Text, nullable=True)


class Version(_Identified, Base):
    __tablename__ = "version"
    __table_args__ = (
        UniqueConstraint(
            "package_id", "version", "module_version", name="uq_version_package_version_module"
        ),
        Index("ix_version_catalog_id", "catalog_id"),
        Index("ix_version_toolchain_name", text("(metadata -> 'toolchain' ->> 'name')")).ddl_if(
            dialect="postgresql"
        ),
        _local_index("version"),
    )
    package_id: Mapped[int] = mapped_column(ForeignKey("package.id", ondelete="CASCADE"))
    # No foreign key (migration 0025): the package's, copied; its rows go with the package.
    catalog_id: Mapped[int] = mapped_column(IdType)
    version: Mapped[str] = mapped_column(String(100))
    module_version: Mapped[str] = mapped_column(String(150), default="")
    release_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    dependencies: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    # Position in the package's versions by the upstream's own version semantics
    # (0 = newest), so ordering needs no string comparison of versions.
    sort_index: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    is_local: Mapped[bool] = _local_flag()


class Target(_Identified, Base):
    __tablename__ = "target"
    __table_args__ = (
        UniqueConstraint(
            "version_id",
            "target_type",
            "target_name",
            "target_subtype",
            name="uq_target_version_type_name_subtype",
        ),
        Index("ix_target_catalog_id", "catalog_id"),
        Index("ix_target_name_subtype", "target_name", "target_subtype"),
        Index(
            "ix_target_gpu_architectures_gin", "gpu_architectures", postgresql_using="gin"
        ).ddl_if(dialect="postgresql"),
        _local_index("target"),
    )
    version_id: Mapped[int] = mapped_column(ForeignKey("version.id", ondelete="CASCADE"))
    # No foreign key (migration 0025): the version's, copied; its rows go with the version.
    catalog_id: Mapped[int] = mapped_column(IdType)
    target_type: Mapped[str] = mapped_column(String(50))
    target_name: Mapped[str] = mapped_column(String(100))
    target_subtype: Mapped[str] = mapped_column(String(100), default="")
    location: Mapped[str] = mapped_column(String(2000), default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    gpu_architectures: Mapped[list[str]] = mapped_column(JSONType, default=list)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    is_local: Mapped[bool] = _local_flag()


# The target list's default order, Waldur's ["-created", "id"] (migration 0010).
Index("ix_target_created_desc_id", Target.created.desc(), Target.id)


class PackageFacet(Base):
    """Derived, kept by syncd/readmodel/facets.py in the writer's transaction: one value a
    package's filters match (a CPU family or microarchitecture of its targets, a toolchain of
    its versions, `gpu` when a target has GPU architectures), so a filter probes this index
    instead of scanning versions and targets per request."""

    __tablename__ = "package_facet"
    __table_args__ = (Index("ix_package_facet_package_id", "package_id"),)

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    package_id: Mapped[int] = mapped_column(IdType, primary_key=True)  # no FK: see PackageReadModel


class PackageSearch(Base):
    """Derived, as PackageFacet: what the `query` filter searches (name, description and
    version strings, lowercased, joined by a separator no search value holds): one scan of
    one 2 MB column instead of three LIKEs and an EXISTS per package. On PostgreSQL a trigram
    index (migration 0021) answers queries of 3 or more characters; shorter ones scan
    (docs/performance.md)."""

    __tablename__ = "package_search"
    __table_args__ = (
        Index(
            "ix_package_search_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    package_id: Mapped[int] = mapped_column(
        IdType, primary_key=True, autoincrement=False
    )  # no FK: see PackageReadModel
    search_text: Mapped[str] = mapped_column(Text)


class ApiToken(Base):
    """An API token; only the SHA-256 of the key is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiTokenOffering(Base):
    """An offering a non-staff token may manage the software catalogs of: syncd's form of
    Waldur's UPDATE_OFFERING permission on the offering's organisation (syncd/tokens.py).
    Offerings are Waldur's; syncd knows them by uuid only."""

    __tablename__ = "api_token_offering"

    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_token.id", ondelete="CASCADE"), primary_key=True
    )
    offering_uuid: Mapped[uuid_module.UUID] = mapped_column(Uuid, primary_key=True)


class OfferingCatalog(_Identified, Base):
    """A Waldur offering's link to a catalog (Waldur's OfferingSoftwareCatalog) and the CPU
    families/microarchitectures and partition it is enabled for. The offering and the
    partition are Waldur's, known here by uuid only; deleting the catalog deletes its links.
    The packages, versions and targets lists' `offering_uuid` filter reads these rows."""

    __tablename__ = "offering_catalog"
    __table_args__ = (
        # Waldur's unique_together (offering, catalog); it also serves lookups by offering.
        UniqueConstraint("offering_uuid", "catalog_id", name="uq_offering_catalog_offering"),
        Index("ix_offering_catalog_catalog_id", "catalog_id"),
    )
    offering_uuid: Mapped[uuid_module.UUID] = mapped_column(Uuid)
    catalog_id: Mapped[int] = mapped_column(ForeignKey("catalog.id", ondelete="CASCADE"))
    enabled_cpu_family: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enabled_cpu_microarchitectures: Mapped[list[str]] = mapped_column(JSONType, default=list)
    partition_uuid: Mapped[uuid_module.UUID | None] = mapped_column(Uuid, nullable=True)
