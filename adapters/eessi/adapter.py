"""The adapter protocol's entry points (discover, fetch_snapshot): what to download and
when a snapshot is due, leaving layout and parsing to the sibling modules.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import schema_error, upstream_time
from adapters.eessi.dump import dump_catalog_metadata, iter_dump_packages
from adapters.eessi.hashes import distrusted, file_name, published_hashes
from adapters.eessi.parse import WHAT, _names, iter_stack_packages, read_header
from adapters.eessi.sources import source_files
from adapters.fetch import Fetcher, FetchResult
from syncd.config import Settings
from syncd.domain import CatalogInfo, CatalogSnapshot, CatalogType
from syncd.errors import VersionNotOfferedError
from syncd.logging import get_logger

log = get_logger(__name__)


class EessiAdapter:
    name: ClassVar[str] = "EESSI"
    catalog_type: ClassVar[CatalogType] = CatalogType.BINARY_RUNTIME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def default_source(self) -> str:
        return self.settings.eessi_source

    def discover(self, fetcher: Fetcher, source: str | None = None) -> list[str]:
        url, _ = source_files(source or self.default_source(), extensions=False)
        result = fetcher.fetch(url)
        try:
            return read_header(result, url).stacks
        finally:
            result.close()

    def fetch_snapshot(
        self,
        fetcher: Fetcher,
        *,
        version: str | None = None,
        source: str | None = None,
        validators: dict[str, Any] | None = None,
    ) -> CatalogSnapshot | None:
        base = source or self.default_source()
        software_url, ext_urls = source_files(base, self.settings.eessi_extensions)
        results = self._download(fetcher, software_url, ext_urls, validators or {})
        if results is None:
            return None
        try:
            software = results[software_url]
            header = read_header(software, software_url)
            stack = version or (header.stacks[0] if header.stacks else None)
            if stack is None:
                raise schema_error(
                    software_url,
                    WHAT,
                    "it lists no EESSI stack version: no 'architectures_map' and no version "
                    "requiring an EESSI/<version> module (the API format), no 'targets' "
                    "paths (an EESSI dump file)",
                )
            if stack not in header.stacks:
                offered = ", ".join(header.stacks) or "none"
                raise VersionNotOfferedError(
                    f"{software_url} has no EESSI stack version {stack!r} (it offers: {offered})"
                )
            present = {t: (results[u], u) for t, u in ext_urls.items() if not results[u].absent}
            # Fail on a broken file now, not mid-sync; the names are what the stream needs
            # of these files before it reads them (read once, not twice).
            ext_names = [_names(ext_result, ext_url) for ext_result, ext_url in present.values()]
        except BaseException:
            for r in results.values():
                r.close()
            raise
        top = header.top
        if header.dump_targets is not None:
            for r in results.values():
                if r is not software:
                    r.close()
            return CatalogSnapshot(
                catalog=self._info(
                    stack, base, dump_catalog_metadata(stack, header.dump_targets, software_url)
                ),
                packages=iter_dump_packages(software, software_url, stack, header.dump_targets),
                validators={url: r.validators for url, r in results.items()},
            )
        catalog = self._info(
            stack,
            base,
            {
                "eessi_version": stack,
                "timestamp": top.get("timestamp"),
                "architectures_map": top.get("architectures_map") or {},
                "gpu_architectures_map": top.get("gpu_architectures_map") or {},
                "category_details": top.get("category_details") or {},
                "files": [software_url, *(u for _r, u in present.values())],
                # Waldur's loader: the folder the API files are read from.
                "api_base_url": software_url.rsplit("/", 1)[0],
            },
        )
        catalog.snapshot_time = upstream_time(top.get("timestamp"))
        return CatalogSnapshot(
            catalog=catalog,
            packages=iter_stack_packages(
                software, software_url, present, stack, header.resolve, ext_names
            ),
            validators={url: r.validators for url, r in results.items()},
        )

    def _info(self, stack: str, source: str, metadata: dict[str, Any]) -> CatalogInfo:
        return CatalogInfo(
            name=self.name,
            version=stack,
            catalog_type=self.catalog_type,
            description=(f"European Environment for Scientific Software Installations {stack}"),
            source_url=source,
            metadata=metadata,
        )

    def _download(
        self,
        fetcher: Fetcher,
        software_url: str,
        ext_urls: dict[str, str],
        validators: dict[str, Any],
    ) -> dict[str, FetchResult] | None:
        """Every file, or None when none changed since `validators` were taken.

        hashes.json first (adapters/eessi/hashes.py): a file it lists with the hash of the
        last sync is not requested. Files found not modified are fetched again in full when
        another file changed (unless their body came anyway), because a snapshot is always
        built from every file.
        """
        urls = [software_url, *ext_urls.values()]
        published = published_hashes(fetcher, software_url, urls) if validators else {}
        results: dict[str, FetchResult] = {}
        try:
            for url in urls:
                results[url] = _fetch_one(fetcher, url, url != software_url, validators, published)
            # A body's hash, or the stored one that a 304 vouches for, against hashes.json's.
            known = {u: r.validators.get("hash") for u, r in results.items()}
            if wrong := distrusted(published, known):
                log.info(
                    "hashes_json_distrusted",
                    reason=f"{file_name(wrong[0])} is not what hashes.json says",
                )
                for url in urls:
                    if _on_its_word(url, url != software_url, validators, published):
                        results[url] = fetcher.fetch(
                            url, validators=validators, optional=url != software_url
                        )
            unchanged = all(
                r.not_modified or (r.absent and (validators.get(url) or {}).get("absent"))
                for url, r in results.items()
            )
            if unchanged:
                for r in results.values():
                    r.close()
                return None
            for url, r in list(results.items()):
                if r.not_modified and r.path is None:
                    results[url] = fetcher.fetch(url, optional=url != software_url)
            return results
        except BaseException:
            for r in results.values():
                r.close()
            raise


def _on_its_word(
    url: str, optional: bool, validators: dict[str, Any], published: dict[str, str]
) -> bool:
    """Whether hashes.json alone says `url` is as the last sync saw it: listed with the
    stored hash, or (hashes.json lists every file of the folder) left out when the file
    was absent then too."""
    previous = validators.get(url) or {}
    if url in published:
        return published[url] == previous.get("hash")
    return bool(published) and optional and bool(previous.get("absent"))


def _fetch_one(
    fetcher: Fetcher,
    url: str,
    optional: bool,
    validators: dict[str, Any],
    published: dict[str, str],
) -> FetchResult:
    if url not in published and _on_its_word(url, optional, validators, published):
        return FetchResult(url, 404, {"absent": True}, final_url=url)
    # A listed file with the stored hash: the fetcher answers "not modified" unasked.
    return fetcher.fetch(
        url, validators=validators, optional=optional, published_hash=published.get(url)
    )
