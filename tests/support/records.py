"""Build snapshots by hand for sync tests and benchmarks.

`small_snapshot()` is a catalog small enough to reason about exact diff counts;
`synthetic_packages()` streams a catalog of any size shaped like Spack or EESSI data
(a few versions per package, a few targets per version, some extensions with parents).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

from syncd.domain import (
    CatalogInfo,
    CatalogSnapshot,
    CatalogType,
    PackageRecord,
    TargetRecord,
    VersionRecord,
)


def catalog_info(name: str = "Test", version: str = "1", **fields: Any) -> CatalogInfo:
    return CatalogInfo(
        name=name, version=version, catalog_type=CatalogType.BINARY_RUNTIME, **fields
    )


def snapshot(
    packages: Iterable[PackageRecord],
    *,
    info: CatalogInfo | None = None,
    validators: dict[str, Any] | None = None,
) -> CatalogSnapshot:
    return CatalogSnapshot(
        catalog=info or catalog_info(description="a test catalog"),
        packages=packages,
        validators=validators or {},
    )


def target(name: str, **fields: Any) -> TargetRecord:
    return TargetRecord(target_type="cpu", target_name=name, **fields)


def version(number: str, *targets: TargetRecord, **fields: Any) -> VersionRecord:
    return VersionRecord(version=number, targets=list(targets), **fields)


def package(name: str, *versions: VersionRecord, **fields: Any) -> PackageRecord:
    return PackageRecord(name=name, versions=list(versions), **fields)


def small_packages() -> list[PackageRecord]:
    """3 packages (one an extension of two others), 5 versions, 7 targets, 2 parent links."""
    return [
        package(
            "gcc",
            version("13.2", target("x86_64/zen2"), target("x86_64/zen3")),
            version("12.3", target("x86_64/zen2")),
            description="GNU compilers",
            homepage="https://gcc.gnu.org",
            licenses=["GPL-3.0"],
        ),
        package(
            "python",
            version(
                "3.12",
                target("x86_64/zen2", gpu_architectures=["nvidia/cc80"]),
                target("aarch64/neoverse_v1"),
                release_date=date(2023, 10, 2),
                dependencies=["gcc"],
            ),
            version("3.11", target("x86_64/zen2"), metadata={"toolchain": "GCCcore"}),
            description="Python",
        ),
        package(
            "numpy",
            version("1.26", target("x86_64/zen2")),
            is_extension=True,
            parent_names=["python", "gcc", "no-such-parent"],
        ),
    ]


def small_snapshot(**kwargs: Any) -> CatalogSnapshot:
    return snapshot(small_packages(), **kwargs)


def failing_after(packages: Iterable[PackageRecord], count: int) -> Iterator[PackageRecord]:
    """Yield `count` packages, then fail as a broken upstream stream would."""
    for i, pkg in enumerate(packages):
        if i == count:
            raise RuntimeError(f"upstream stream broke after {count} packages")
        yield pkg


def paused_after(
    packages: Iterable[PackageRecord], count: int, on_pause: Callable[[], None]
) -> Iterator[PackageRecord]:
    """Yield `count` packages, call `on_pause` (which may block), then yield the rest."""
    for i, pkg in enumerate(packages):
        if i == count:
            on_pause()
        yield pkg


def synthetic_packages(
    n_packages: int,
    *,
    versions_per_package: int = 5,
    targets_per_version: int = 2,
    extension_every: int = 10,
    seed: int = 0,
    changed_fraction: float = 0.0,
) -> Iterator[PackageRecord]:
    """A deterministic stream of `n_packages` packages shaped like real catalog data.

    Every `extension_every`-th package is an extension whose parent is the package before it.
    `changed_fraction` changes that fraction of versions' metadata (seeded), to simulate an
    upstream refresh with a few edits.
    """
    rng = random.Random(seed)
    change = random.Random(seed + 1)
    for i in range(n_packages):
        name = f"pkg-{i:06d}"
        versions = []
        count = 1 + rng.randrange(versions_per_package * 2 - 1)
        for j in range(count):
            meta: dict[str, Any] = {
                "downloads": [f"https://example.org/{name}/{name}-{count - j}.0.tar.gz"],
                "sha256": f"{rng.getrandbits(128):032x}",
            }
            if changed_fraction and change.random() < changed_fraction:
                meta["changed"] = True
            targets = [
                TargetRecord(
                    target_type="cpu",
                    target_name=f"x86_64/arch{k}",
                    location=f"/cvmfs/example/{name}/{k}",
                )
                for k in range(targets_per_version)
            ]
            versions.append(
                VersionRecord(
                    version=f"{count - j}.0",
                    dependencies=[f"pkg-{(i + d) % n_packages:06d}" for d in (1, 2)],
                    metadata=meta,
                    targets=targets,
                )
            )
        is_ext = extension_every > 0 and i % extension_every == extension_every - 1
        yield PackageRecord(
            name=name,
            description=f"Synthetic package number {i}, for benchmarks and tests.",
            homepage=f"https://example.org/{name}",
            categories=["build-tools"] if i % 3 else [],
            licenses=["MIT"],
            maintainers=["alice", "bob"][: i % 3],
            is_extension=is_ext,
            parent_names=[f"pkg-{i - 1:06d}"] if is_ext else [],
            versions=versions,
        )
