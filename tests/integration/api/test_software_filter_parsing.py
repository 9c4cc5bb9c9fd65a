"""Filters as Waldur's clients use them: multi-valued CPU filters, the extension and toolchain
family filters, and query values parsed as django-filter parses them (booleans, empty
values, bad choices, repeated `o`), with Waldur's default orders.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from syncd.api.filter_params import MAX_FILTER_VALUES
from syncd.api.schemas import MAX_FILTER_CHARS
from syncd.db.tables import Target, Version
from tests.integration.api.conftest import (
    CATALOGS,
    PACKAGES,
    T0,
    TARGETS,
    VERSIONS,
    Sample,
    names,
)

ALL_PACKAGES = ["cuda-samples", "gromacs", "numpy", "python"]
PYTHON_EXTENSIONS = [
    {"type": "python", "name": "pip", "version": "23.1.2"},
    {"type": "python", "name": "setuptools", "version": "67.7.2"},
]
# version -> metadata keys merged into what the sample stores
VERSION_METADATA: dict[str, dict[str, Any]] = {
    "python/3.11.3": {
        "extensions": PYTHON_EXTENSIONS,
        "toolchain_families_compatibility": ["2023a_foss"],
    },
    "python/3.10.8": {"toolchain_families_compatibility": ["2022b_foss"]},
    "numpy/1.26.4": {"toolchain_families_compatibility": ["2023a_foss"]},
    "cuda-samples/12.1": {
        "extensions": [{"type": "component", "name": "cub", "version": "2.1.0"}],
        "toolchain_families_compatibility": ["2023a_foss", "2023b_foss"],
    },
    # Not lists: never a match (JSONB containment finds nothing in them either).
    "gromacs/2024.1": {
        "extensions": {"type": "python", "name": "pip"},
        "toolchain_families_compatibility": "2023a_foss",
    },
}
# Targets' creation order, oldest first: python 3.11.3's zen2 build is the newest of all.
TARGET_AGES = [
    "gromacs/2024.1/build",
    "python/3.11.3/aarch64/neoverse_v1",
    "python/3.10.8/x86_64/amd/zen2",
    "numpy/1.26.4/x86_64/intel/haswell",
    "cuda-samples/12.1/x86_64/amd/zen2",
    "python/3.11.3/x86_64/amd/zen2",
]


@pytest.fixture
def richer(sample: Sample, session_factory: sessionmaker[Session]) -> Sample:
    """The sample with extensions and toolchain families in its versions' metadata, and
    targets created at known times."""
    with session_factory() as session:
        for key, extra in VERSION_METADATA.items():
            version = session.query(Version).filter_by(uuid=sample.versions[key]).one()
            version.metadata_ = {**version.metadata_, **extra}
        for minutes, key in enumerate(TARGET_AGES):
            session.execute(
                update(Target)
                .where(Target.uuid == sample.targets[key])
                .values(created=T0 + timedelta(minutes=minutes))
            )
        session.commit()
    return sample


def _package_names(client: TestClient, query: str) -> list[str]:
    response = client.get(f"{PACKAGES}?{query}&o=name")
    found = names(response)
    assert response.headers["X-Result-Count"] == str(len(found))
    return found


def _versions(client: TestClient, query: str) -> list[str]:
    response = client.get(f"{VERSIONS}?{query}")
    assert response.status_code == 200, response.text
    return [f"{v['package_name']}/{v['version']}" for v in response.json()]


def _targets(client: TestClient, query: str) -> list[str]:
    response = client.get(f"{TARGETS}?{query}")
    assert response.status_code == 200, response.text
    return [
        f"{t['package_name']}/{t['target_name']}/{t['target_subtype']}" for t in response.json()
    ]


# --- multi-valued CPU filters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Repeated keys are alternatives, as the offering page sends its enabled targets.
        (
            "cpu_microarchitecture=intel/haswell&cpu_microarchitecture=neoverse_v1",
            ["numpy", "python"],
        ),
        ("cpu_family=aarch64&cpu_family=x86_64", ["cuda-samples", "numpy", "python"]),
        ("cpu_family=aarch64&cpu_family=riscv64", ["python"]),
        # Exact and case-sensitive on packages, as Waldur's filter is.
        ("cpu_family=X86_64", []),
        ("cpu_family=x86", []),
        # Empty values are dropped; none left is no filter.
        ("cpu_family=&cpu_family=aarch64", ["python"]),
        ("cpu_microarchitecture=", ALL_PACKAGES),
        # Family and microarchitecture still hold on the same target.
        ("cpu_family=aarch64&cpu_microarchitecture=intel/haswell", []),
    ],
)
def test_package_cpu_filters_take_several_values(
    client: TestClient, sample: Sample, query: str, expected: list[str]
) -> None:
    assert _package_names(client, query) == expected


def test_version_cpu_filters_take_several_values(client: TestClient, sample: Sample) -> None:
    both = "cpu_microarchitecture=intel/haswell&cpu_microarchitecture=neoverse_v1&o=package_name"
    assert _versions(client, both) == ["numpy/1.26.4", "python/3.11.3"]
    families = _versions(client, "cpu_family=aarch64&cpu_family=x86_64")
    assert len(families) == 4 and "gromacs/2024.1" not in families


def test_target_cpu_filters_take_several_values_ignoring_case(
    client: TestClient, sample: Sample
) -> None:
    found = _targets(
        client,
        "cpu_microarchitecture=INTEL/HASWELL&cpu_microarchitecture=Neoverse_V1&o=target_name",
    )
    assert found == ["python/aarch64/neoverse_v1", "numpy/x86_64/intel/haswell"]
    # Only CPU targets: gromacs' build target (target_name x86_64) is not one.
    assert len(_targets(client, "cpu_family=AARCH64&cpu_family=x86_64")) == 5


def test_too_many_values_is_a_400(client: TestClient, sample: Sample) -> None:
    at_cap = [("cpu_family", f"f{i}") for i in range(MAX_FILTER_VALUES)]
    assert client.get(PACKAGES, params=at_cap).status_code == 200
    for path in (PACKAGES, VERSIONS, TARGETS):
        over = client.get(path, params=[*at_cap, ("cpu_family", "one-more")])
        assert over.status_code == 400, (path, over.text)
        assert over.json() == {
            "cpu_family": [f"Ensure this field has no more than {MAX_FILTER_VALUES} elements."]
        }
    long = client.get(PACKAGES, params=[("cpu_microarchitecture", "x" * (MAX_FILTER_CHARS + 1))])
    assert long.status_code == 400
    assert long.json() == {
        "cpu_microarchitecture": [
            f"Ensure this value has at most {MAX_FILTER_CHARS} characters "
            f"(it has {MAX_FILTER_CHARS + 1})."
        ]
    }


# --- extension and toolchain family filters -------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("extension_type=python", ["python"]),
        ("extension_type=component", ["cuda-samples"]),
        ("extension_type=Python", []),  # exact, as JSON containment is
        ("extension_type=pip", []),  # a name, not a type
        ("extension_name=pip", ["python"]),
        ("extension_name=cub", ["cuda-samples"]),
        ("extension_name=pi", []),
        ("extension_type=python&extension_name=setuptools", ["python"]),
        ("extension_type=python&extension_name=cub", []),
        ("toolchain_families_compatibility=2023a_foss", ["cuda-samples", "numpy", "python"]),
        ("toolchain_families_compatibility=2022b_foss", ["python"]),
        ("toolchain_families_compatibility=2023b_foss", ["cuda-samples"]),
        ("toolchain_families_compatibility=2023", []),
        ("extension_type=", ALL_PACKAGES),
    ],
)
def test_package_extension_and_toolchain_family_filters(
    client: TestClient, richer: Sample, query: str, expected: list[str]
) -> None:
    assert _package_names(client, query) == expected


def test_version_toolchain_family_filter(client: TestClient, richer: Sample) -> None:
    query = "toolchain_families_compatibility=2023a_foss&o=package_name"
    assert _versions(client, query) == ["cuda-samples/12.1", "numpy/1.26.4", "python/3.11.3"]
    assert _versions(client, "toolchain_families_compatibility=2022b_foss") == ["python/3.10.8"]
    long = client.get(VERSIONS, params={"toolchain_families_compatibility": "x" * 201})
    assert long.status_code == 400


# --- values parsed as django-filter parses them --------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", ["numpy"]),
        ("TRUE", ["numpy"]),
        ("True", ["numpy"]),
        ("1", ["numpy"]),
        ("false", ["cuda-samples", "gromacs", "python"]),
        ("0", ["cuda-samples", "gromacs", "python"]),
        # Anything else is no filter (BooleanWidget), never a 400.
        ("yes", ALL_PACKAGES),
        ("perhaps", ALL_PACKAGES),
        ("", ALL_PACKAGES),
    ],
)
def test_booleans_as_django_filter_reads_them(
    client: TestClient, sample: Sample, value: str, expected: list[str]
) -> None:
    assert _package_names(client, f"is_extension={value}") == expected


def test_other_booleans_ignore_what_they_cannot_read(client: TestClient, sample: Sample) -> None:
    assert _package_names(client, "has_gpu=on") == ALL_PACKAGES
    assert len(_versions(client, "has_gpu=no")) == 6
    assert len(_targets(client, "has_gpu=2")) == 6
    assert _targets(client, "has_gpu=1") == ["cuda-samples/x86_64/amd/zen2"]
    assert names(client.get(f"{CATALOGS}?auto_update_enabled=off")) == ["EESSI", "Spack"]
    assert names(client.get(f"{CATALOGS}?auto_update_enabled=0")) == ["Spack"]


def test_empty_uuid_choice_and_date_values_are_no_filter(
    client: TestClient, sample: Sample
) -> None:
    for query in ("catalog_uuid=", "parent_software_uuid=", "catalog_type="):
        assert _package_names(client, query) == ALL_PACKAGES, query
    for query in ("package_uuid=", "catalog_uuid=", "catalog_type=", "release_date_after="):
        assert len(_versions(client, query)) == 6, query
    for query in ("version_uuid=", "package_uuid=", "catalog_uuid="):
        assert len(_targets(client, query)) == 6, query
    assert names(client.get(f"{CATALOGS}?catalog_type=")) == ["EESSI", "Spack"]
    # A value that is there is still checked.
    bad = client.get(f"{VERSIONS}?package_uuid=nope")
    assert bad.status_code == 400 and bad.json() == {"package_uuid": ["Enter a valid UUID."]}


@pytest.mark.parametrize("path", [PACKAGES, VERSIONS, CATALOGS])
def test_a_bad_choice_reads_as_djangos(client: TestClient, sample: Sample, path: str) -> None:
    response = client.get(f"{path}?catalog_type=foo")
    assert response.status_code == 400
    assert response.json() == {
        "catalog_type": ["Select a valid choice. foo is not one of the available choices."]
    }


def test_of_repeated_o_keys_the_last_counts(client: TestClient, sample: Sample) -> None:
    assert names(client.get(f"{PACKAGES}?o=name&o=-name")) == list(reversed(ALL_PACKAGES))
    assert names(client.get(f"{PACKAGES}?o=-name&o=name")) == ALL_PACKAGES
    versions = _versions(client, "package_name=gromacs&o=-version&o=version")
    assert versions == ["gromacs/2023.3", "gromacs/2024.1"]
    # An unknown term in an earlier key is not read, so not refused.
    assert client.get(f"{TARGETS}?o=nonsense&o=created").status_code == 200


def test_target_ordering_has_waldurs_choices(client: TestClient, sample: Sample) -> None:
    for term in ("cpu_family", "-cpu_family"):
        response = client.get(f"{TARGETS}?o={term}")
        assert response.status_code == 400
        assert response.json() == {
            "o": [f"Select a valid choice. {term} is not one of the available choices."]
        }
    for term in ("cpu_microarchitecture", "package_name", "target_type", "target_name", "created"):
        assert client.get(f"{TARGETS}?o=-{term}").status_code == 200, term


# --- Waldur's default orders -----------------------------------------------------------------


def test_versions_default_to_package_then_oldest_version(
    client: TestClient, sample: Sample
) -> None:
    assert _versions(client, "") == [
        "cuda-samples/12.1",
        "gromacs/2023.3",
        "gromacs/2024.1",
        "numpy/1.26.4",
        "python/3.10.8",
        "python/3.11.3",
    ]
    # `version` compares versions (the upstream's semantics), not strings: 3.10.8 < 3.11.3.
    assert _versions(client, "package_name=python&o=-version") == ["python/3.11.3", "python/3.10.8"]


def test_targets_default_to_newest_first(client: TestClient, richer: Sample) -> None:
    newest_first = [
        "python/x86_64/amd/zen2",
        "cuda-samples/x86_64/amd/zen2",
        "numpy/x86_64/intel/haswell",
        "python/x86_64/amd/zen2",
        "python/aarch64/neoverse_v1",
        "gromacs/x86_64/cmake",
    ]
    assert _targets(client, "") == newest_first
    assert _targets(client, "o=created") == list(reversed(newest_first))


def test_nested_versions_and_targets_as_waldur_lists_them(
    client: TestClient, richer: Sample
) -> None:
    body = client.get(f"{PACKAGES}{richer.packages['python'].hex}/").json()
    assert [v["version"] for v in body["versions"]] == ["3.10.8", "3.11.3"]
    newest = body["versions"][1]
    assert [t["target_subtype"] for t in newest["targets"]] == ["amd/zen2", "neoverse_v1"]
    assert newest["extensions"] == PYTHON_EXTENSIONS
    assert newest["toolchain_families_compatibility"] == ["2023a_foss"]
