"""Adapters are found through the `syncd.adapters` entry points, plugins included."""

from __future__ import annotations

from pathlib import Path

from adapters.base import Adapter, load_adapters
from adapters.eessi import EessiAdapter
from adapters.fetch import Fetcher
from adapters.spack import SpackAdapter
from syncd.config import Settings
from syncd.domain import CatalogType
from tests.support.toy_adapter import ToyAdapter, registered_toy_adapter

SETTINGS = Settings()


def test_eessi_and_spack_are_registered_entry_points() -> None:
    found = load_adapters(SETTINGS)
    assert isinstance(found["EESSI"], EessiAdapter)
    assert isinstance(found["Spack"], SpackAdapter)
    for adapter in found.values():
        assert isinstance(adapter, Adapter)
    assert found["EESSI"].catalog_type is CatalogType.BINARY_RUNTIME
    assert found["Spack"].catalog_type is CatalogType.SOURCE_PACKAGE
    assert found["EESSI"].default_source() == SETTINGS.eessi_source
    assert found["Spack"].default_source() == SETTINGS.spack_source


def test_a_plugin_entry_point_is_found_and_removed(tmp_path: Path) -> None:
    assert "Toy" not in load_adapters(SETTINGS)
    with registered_toy_adapter(tmp_path):
        found = load_adapters(SETTINGS)
        assert isinstance(found["Toy"], ToyAdapter)
        assert isinstance(found["Toy"], Adapter)
        assert {"EESSI", "Spack"} <= set(found)
    assert "Toy" not in load_adapters(SETTINGS)


def test_toy_adapter_snapshot(tmp_path: Path) -> None:
    with registered_toy_adapter(tmp_path):
        toy = load_adapters(SETTINGS)["Toy"]
    fetcher = Fetcher(SETTINGS)
    assert toy.discover(fetcher) == ["1.0"]
    snapshot = toy.fetch_snapshot(fetcher)
    assert snapshot is not None
    assert snapshot.catalog.catalog_type is CatalogType.PACKAGE_MANAGER
    packages = list(snapshot.packages)
    assert [p.name for p in packages] == ["hammer", "saw"]
    assert [v.version for v in packages[0].versions] == ["1.10", "1.9", "1.0"]
