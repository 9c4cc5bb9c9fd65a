"""Wire shapes built by syncd/api/representation.py, without a database."""

from __future__ import annotations

import uuid

from syncd.api.representation import nested_package


def test_a_nested_package_lists_each_version_once_in_the_given_order() -> None:
    # An EESSI extension bundled by two builds of its parent has two rows of 1.3.7.
    row_uuid = uuid.uuid4()
    nested = nested_package("http://x", row_uuid, "Bottleneck", ["1.3.7", "1.3.7", "1.3.5"])
    assert nested["versions"] == ["1.3.7", "1.3.5"]
    assert nested["uuid"] == row_uuid.hex
    assert nested["url"].endswith(f"/{row_uuid.hex}/")
