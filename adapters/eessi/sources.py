"""Which files a source names: the upstream's file layout, kept apart so a new naming
scheme (such as the RISC-V files) is handled in one place.
"""

from __future__ import annotations

from urllib.parse import urljoin

from adapters.fetch import child_url, parse_source

SOFTWARE_FILE = "eessi_api_metadata_software.json"
EXTENSION_TYPES = ("python", "r", "perl", "octave", "ruby", "component")


def source_files(source: str, extensions: bool) -> tuple[str, dict[str, str]]:
    """(software file URL, {extension type: URL}) for a base folder or a software file URL."""
    path = parse_source(source).path  # a malformed source: PermanentError, not ValueError
    if path.endswith((".json", ".json.gz")):
        software = source
        stem = path.rsplit("/", 1)[-1]
        ext_urls = {}
        if "software.json" in stem:
            ext_urls = {
                t: urljoin(source, stem.replace("software.json", f"ext-{t}.json"))
                for t in EXTENSION_TYPES
            }
    else:
        software = child_url(source, SOFTWARE_FILE)
        ext_urls = {
            t: child_url(source, f"eessi_api_metadata_ext-{t}.json") for t in EXTENSION_TYPES
        }
    return software, (ext_urls if extensions else {})
