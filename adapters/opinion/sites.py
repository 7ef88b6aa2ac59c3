"""Site definitions (``config/sites/<name>.yaml``): finding and loading them.

What a definition says, and reading pages by it, is pure and lives in
``normalizers.opinion.site_pages`` (the ``html_page`` normalizer needs it without touching a
file); its names are re-exported here, so the opinion channel imports from one place.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.model.errors import ConfigError
from gateway.support.config import describe_validation_error
from normalizers.opinion.site_pages import (
    SITE_RESOURCE,
    DetailSpec,
    FieldSpec,
    ListItem,
    ListPage,
    ListSpec,
    Pagination,
    SiteDefinition,
    extract_list,
    field_value,
    http_url,
    next_page,
    parse_count,
    read_html,
)

__all__ = [
    "SITE_RESOURCE", "DetailSpec", "FieldSpec", "ListItem", "ListPage", "ListSpec", "Pagination",
    "SiteDefinition", "extract_list", "field_value", "http_url", "load_site", "next_page",
    "parse_count", "parse_site", "read_html", "site_path",
]

SITES_DIR = Path("config/sites")


def site_path(ref: str) -> Path:
    """``discuz_forum`` → ``config/sites/discuz_forum.yaml``; a path stays a path."""
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        return Path(ref)
    return SITES_DIR / f"{ref}.yaml"


def parse_site(raw: Any, origin: str) -> SiteDefinition:
    if not isinstance(raw, dict):
        raise ConfigError([f"{origin}: the top level must be a mapping"])
    try:
        return SiteDefinition.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, origin)) from None


def load_site(ref: str | Path) -> SiteDefinition:
    """Read and validate a site definition; ``ConfigError`` lists every problem."""
    path = site_path(str(ref))
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int) -> SiteDefinition:
    """Parsed once per version of the file (its time and size are part of the key)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_site(raw, path)
