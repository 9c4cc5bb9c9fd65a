"""Read-only packages, versions and targets: every filter and ordering, retrieve, headers."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import PACKAGES, TARGETS, VERSIONS, Sample, names


def test_package_list_shape(client: TestClient, sample: Sample) -> None:
    response = client.get(PACKAGES)
    assert response.headers["X-Result-Count"] == "4"
    by_name = {item["name"]: item for item in response.json()}
    numpy = by_name["numpy"]
    assert numpy["uuid"] == sample.packages["numpy"].hex
    assert numpy["url"] == f"http://testserver{PACKAGES}{numpy['uuid']}/"
    assert numpy["catalog"].endswith(f"/api/marketplace-software-catalogs/{sample.eessi.hex}/")
    assert (numpy["catalog_name"], numpy["catalog_version"]) == ("EESSI", "2023.06")
    assert numpy["catalog_type_display"] == "Binary Runtime (EESSI)"
    assert numpy["is_extension"] is True
    assert numpy["parent_softwares"] == [
        {
            "uuid": sample.packages["python"].hex,
            "name": "python",
            "url": f"http://testserver{PACKAGES}{sample.packages['python'].hex}/",
            # Oldest first, as Waldur nests versions.
            "versions": ["3.10.8", "3.11.3"],
        }
    ]
    python = by_name["python"]
    assert (python["version_count"], python["extension_count"]) == (2, 1)
    # Lists embed versions (with targets) and extensions as the retrieve does (issue 25).
    detail = client.get(f"{PACKAGES}{sample.packages['python']}/").json()
    assert [v["version"] for v in python["versions"]] == ["3.10.8", "3.11.3"]
    assert python["versions"] == detail["versions"]
    assert python["extensions"] == detail["extensions"]
    assert python["extensions"][0]["url"] == f"http://testserver{PACKAGES}{numpy['uuid']}/"


def test_package_retrieve_embeds_versions_targets_and_extensions(
    client: TestClient, sample: Sample
) -> None:
    response = client.get(f"{PACKAGES}{sample.packages['python']}/")
    assert response.status_code == 200
    body = response.json()
    # Versions oldest first, as Waldur nests them (its models' default ordering).
    assert [v["version"] for v in body["versions"]] == ["3.10.8", "3.11.3"]
    newest = body["versions"][-1]
    assert newest["toolchain"] == {"name": "GCCcore", "version": "12.3.0"}
    assert newest["modulename"] == "python/3.11.3"
    assert newest["module"]["module_version"] == "3.11.3"
    assert newest["required_modules"] == [{"module_name": "EESSI", "module_version": "2023.06"}]
    assert newest["extensions"] == [] and newest["toolchain_families_compatibility"] == []
    assert {(t["target_name"], t["target_subtype"]) for t in newest["targets"]} == {
        ("x86_64", "amd/zen2"),
        ("aarch64", "neoverse_v1"),
    }
    assert [e["name"] for e in body["extensions"]] == ["numpy"]
    assert body["extensions"][0]["versions"] == ["1.26.4"]
    assert body["parent_softwares"] == []
    assert client.get(f"{PACKAGES}{uuid.uuid4().hex}/").status_code == 404
    assert client.get(f"{PACKAGES}x/").json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("query=arrays", ["numpy"]),  # description
        ("query=PYTH", ["numpy", "python"]),  # name, and numpy's description
        ("query=2024.1", ["gromacs"]),  # a version
        ("name=o", ["gromacs", "python"]),
        ("name_exact=python", ["python"]),
        ("name_exact=pyth", []),
        ("description=molecular", ["gromacs"]),
        ("catalog_name=spa", ["gromacs"]),
        ("catalog_version=2023", ["cuda-samples", "numpy", "python"]),
        ("catalog_type=source_package", ["gromacs"]),
        ("is_extension=true", ["numpy"]),
        ("is_extension=false", ["cuda-samples", "gromacs", "python"]),
        ("has_version=3.10.8", ["python"]),
        ("has_version=3.10", []),
        ("cpu_family=aarch64", ["python"]),
        ("cpu_family=x86_64", ["cuda-samples", "numpy", "python"]),  # not gromacs' build target
        ("cpu_microarchitecture=intel/haswell", ["numpy"]),
        ("cpu_microarchitecture=cmake", []),
        ("category=python", ["numpy"]),
        ("category=pyth", []),
        ("license=BSD-3-Clause", ["cuda-samples"]),
        ("toolchain_name=GCCcore", ["python"]),
        ("toolchain_name=foss", ["numpy"]),
        ("has_gpu=true", ["cuda-samples"]),
        ("has_gpu=false", ["gromacs", "numpy", "python"]),
        ("gpu_arch=nvidia/cc90", ["cuda-samples"]),
        ("gpu_arch=nvidia/cc9", []),
        ("cpu_family=x86_64&has_gpu=false&catalog_type=binary_runtime", ["numpy", "python"]),
    ],
)
def test_package_filters(
    client: TestClient, sample: Sample, query: str, expected: list[str]
) -> None:
    response = client.get(f"{PACKAGES}?{query}&o=name")
    assert names(response) == expected
    assert response.headers["X-Result-Count"] == str(len(expected))


def test_package_uuid_filters(client: TestClient, sample: Sample) -> None:
    by_catalog = client.get(f"{PACKAGES}?catalog_uuid={sample.spack}")
    assert names(by_catalog) == ["gromacs"]
    by_hex = client.get(f"{PACKAGES}?catalog_uuid={sample.spack.hex}")
    assert names(by_hex) == ["gromacs"]
    children = client.get(f"{PACKAGES}?parent_software_uuid={sample.packages['python'].hex}")
    assert names(children) == ["numpy"]
    bad = client.get(f"{PACKAGES}?catalog_uuid=nope")
    assert bad.status_code == 400 and bad.json() == {"catalog_uuid": ["Enter a valid UUID."]}


def test_package_bad_type_is_a_400_in_djangos_words(client: TestClient, sample: Sample) -> None:
    bad = client.get(f"{PACKAGES}?catalog_type=rpm")
    assert bad.status_code == 400
    assert bad.json() == {
        "catalog_type": ["Select a valid choice. rpm is not one of the available choices."]
    }


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("", ["cuda-samples", "gromacs", "numpy", "python"]),
        ("o=-name", ["python", "numpy", "gromacs", "cuda-samples"]),
        ("o=-catalog_name,name", ["gromacs", "cuda-samples", "numpy", "python"]),
        ("o=catalog_version,-name", ["python", "numpy", "cuda-samples", "gromacs"]),
        ("o=created", ["python", "numpy", "cuda-samples", "gromacs"]),
        ("o=-modified", ["python", "numpy", "cuda-samples", "gromacs"]),
    ],
)
def test_package_orderings(
    client: TestClient, sample: Sample, ordering: str, expected: list[str]
) -> None:
    assert names(client.get(f"{PACKAGES}?{ordering}")) == expected


def test_package_unknown_ordering(client: TestClient, sample: Sample) -> None:
    assert client.get(f"{PACKAGES}?o=version").status_code == 400


def test_package_head_and_fields(client: TestClient, sample: Sample) -> None:
    head = client.head(f"{PACKAGES}?is_extension=false")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Result-Count"] == "3"
    body = client.get(f"{PACKAGES}?field=name&field=version_count&o=name").json()
    assert body[0] == {"name": "cuda-samples", "version_count": 1}


# --- versions ------------------------------------------------------------------------------


def _versions(client: TestClient, query: str) -> list[str]:
    response = client.get(f"{VERSIONS}?{query}")
    return [f"{v['package_name']}/{v['version']}" for v in response.json()]


def test_version_list_shape(client: TestClient, sample: Sample) -> None:
    response = client.get(f"{VERSIONS}?package_uuid={sample.packages['python']}")
    assert response.headers["X-Result-Count"] == "2"
    newest = response.json()[-1]
    assert newest["uuid"] == sample.versions["python/3.11.3"].hex
    assert newest["url"] == f"http://testserver{VERSIONS}{newest['uuid']}/"
    assert newest["package_name"] == "python" and newest["catalog_type"] == "binary_runtime"
    assert newest["target_count"] == 2
    assert newest["dependencies"] == ["zlib"]
    assert newest["toolchain"] == {"name": "GCCcore", "version": "12.3.0"}
    assert newest["modulename"] == "python/3.11.3"
    assert newest["release_date"] is None
    one = client.get(f"{VERSIONS}{sample.versions['gromacs/2024.1']}/")
    assert one.status_code == 200
    assert one.json()["release_date"] == "2024-02-01"
    assert one.json()["toolchain"] == {} and one.json()["module"] == {}
    assert client.get(f"{VERSIONS}{uuid.uuid4()}/").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("catalog_uuid={spack}", ["gromacs/2023.3", "gromacs/2024.1"]),
        ("package_name=NUM", ["numpy/1.26.4"]),
        ("version=3.1", ["python/3.10.8", "python/3.11.3"]),
        ("version_exact=3.1", []),
        ("version_exact=12.1", ["cuda-samples/12.1"]),
        ("catalog_type=source_package", ["gromacs/2023.3", "gromacs/2024.1"]),
        ("cpu_family=aarch64", ["python/3.11.3"]),
        ("cpu_microarchitecture=amd/zen2", ["cuda-samples/12.1", "python/3.10.8", "python/3.11.3"]),
        ("cpu_family=x86_64&package_name=gromacs", []),
        ("toolchain_name=GCCcore", ["python/3.10.8", "python/3.11.3"]),
        ("toolchain_version=12.3.0", ["cuda-samples/12.1", "python/3.11.3"]),
        ("release_date_after=2024-01-01", ["gromacs/2024.1"]),
        ("release_date_before=2024-01-01", ["gromacs/2023.3"]),
        (
            "release_date_after=2023-10-01&release_date_before=2024-02-01",
            ["gromacs/2023.3", "gromacs/2024.1"],
        ),
        ("has_gpu=true", ["cuda-samples/12.1"]),
        (
            "has_gpu=false&catalog_type=binary_runtime",
            ["numpy/1.26.4", "python/3.10.8", "python/3.11.3"],
        ),
        ("gpu_arch=nvidia/cc80", ["cuda-samples/12.1"]),
    ],
)
def test_version_filters(
    client: TestClient, sample: Sample, query: str, expected: list[str]
) -> None:
    query = query.format(spack=sample.spack.hex)
    assert _versions(client, query) == expected


def test_version_package_uuid_accepts_hyphens(client: TestClient, sample: Sample) -> None:
    assert _versions(client, f"package_uuid={sample.packages['numpy']}") == ["numpy/1.26.4"]
    assert client.get(f"{VERSIONS}?release_date_after=yesterday").status_code == 400


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        # Upstream version semantics (sort_index), not string order.
        ("o=version", ["gromacs/2023.3", "gromacs/2024.1"]),
        ("o=-version", ["gromacs/2024.1", "gromacs/2023.3"]),
        ("o=release_date", ["gromacs/2023.3", "gromacs/2024.1"]),
        ("o=-created", ["gromacs/2023.3", "gromacs/2024.1"]),
    ],
)
def test_version_orderings(
    client: TestClient, sample: Sample, ordering: str, expected: list[str]
) -> None:
    assert _versions(client, f"package_name=gromacs&{ordering}") == expected


def test_version_default_and_package_name_orderings(client: TestClient, sample: Sample) -> None:
    # Waldur's default: by package, then version (oldest first), then module version.
    default = _versions(client, "")
    assert default == [
        "cuda-samples/12.1",
        "gromacs/2023.3",
        "gromacs/2024.1",
        "numpy/1.26.4",
        "python/3.10.8",
        "python/3.11.3",
    ]
    by_package = _versions(client, "o=-package_name")
    assert by_package[0].startswith("python/")
    assert client.head(VERSIONS).headers["X-Result-Count"] == "6"
    assert client.get(f"{VERSIONS}?o=size").status_code == 400


# --- targets -------------------------------------------------------------------------------


def _targets(client: TestClient, query: str) -> list[str]:
    response = client.get(f"{TARGETS}?{query}")
    assert response.status_code == 200, response.text
    return [
        f"{t['package_name']}/{t['target_name']}/{t['target_subtype']}" for t in response.json()
    ]


def test_target_shape_and_retrieve(client: TestClient, sample: Sample) -> None:
    key = "cuda-samples/12.1/x86_64/amd/zen2"
    response = client.get(f"{TARGETS}{sample.targets[key]}/")
    assert response.status_code == 200
    body = response.json()
    assert body["gpu_architectures"] == ["nvidia/cc80", "nvidia/cc90"]
    assert body["target_type"] == "cpu_architecture"
    assert body["location"].endswith("/x86_64/amd/zen2")
    assert body["metadata"] == {"full_arch": "x86_64/amd/zen2"}
    assert body["version_uuid"] == sample.versions["cuda-samples/12.1"].hex
    assert body["url"] == f"http://testserver{TARGETS}{body['uuid']}/"
    assert client.get(f"{TARGETS}{uuid.uuid4()}/").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("version_uuid={python_new}", ["python/aarch64/neoverse_v1", "python/x86_64/amd/zen2"]),
        ("package_uuid={numpy}", ["numpy/x86_64/intel/haswell"]),
        ("catalog_uuid={spack}", ["gromacs/x86_64/cmake"]),
        ("cpu_family=X86_64&package_name=x", []),
        ("cpu_family=aarch64", ["python/aarch64/neoverse_v1"]),
        ("cpu_microarchitecture=INTEL/HASWELL", ["numpy/x86_64/intel/haswell"]),
        ("target_type=BUILD_SYSTEM", ["gromacs/x86_64/cmake"]),
        ("target_name=arch", ["python/aarch64/neoverse_v1"]),
        (
            "target_subtype=zen",
            ["cuda-samples/x86_64/amd/zen2", "python/x86_64/amd/zen2", "python/x86_64/amd/zen2"],
        ),
        ("path=haswell", ["numpy/x86_64/intel/haswell"]),
        ("has_gpu=true", ["cuda-samples/x86_64/amd/zen2"]),
        ("gpu_arch=nvidia/cc80", ["cuda-samples/x86_64/amd/zen2"]),
    ],
)
def test_target_filters(
    client: TestClient, sample: Sample, query: str, expected: list[str]
) -> None:
    query = query.format(
        python_new=sample.versions["python/3.11.3"],
        numpy=sample.packages["numpy"].hex,
        spack=sample.spack,
    )
    if "package_name=x" in query:
        query = query.replace("&package_name=x", "&target_type=none")
    assert _targets(client, query) == expected


def test_target_has_gpu_false_and_count(client: TestClient, sample: Sample) -> None:
    assert client.head(TARGETS).headers["X-Result-Count"] == "6"
    assert len(_targets(client, "has_gpu=false")) == 5


@pytest.mark.parametrize(
    ("ordering", "first"),
    [
        ("o=target_name", "aarch64"),
        ("o=-target_name", "x86_64"),
    ],
)
def test_target_orderings_by_family(
    client: TestClient, sample: Sample, ordering: str, first: str
) -> None:
    found = _targets(client, f"package_uuid={sample.packages['python']}&{ordering}")
    assert found[0].split("/")[1] == first


def test_target_other_orderings(client: TestClient, sample: Sample) -> None:
    micro = _targets(client, "o=-cpu_microarchitecture")
    assert micro[0] == "python/aarch64/neoverse_v1"
    by_package = _targets(client, "o=-package_name")
    assert by_package[0].startswith("python/")
    assert by_package[-1].startswith("cuda-samples/")
    by_type = _targets(client, "o=target_type")
    assert by_type[0] == "gromacs/x86_64/cmake"
    assert len(_targets(client, "o=-created")) == 6
    assert client.get(f"{TARGETS}?o=location").status_code == 400
