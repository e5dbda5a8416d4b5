"""Storage URLs: which one to use, and how to show it without its password."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

__all__ = ["DEFAULT_URL", "ENV_VAR", "redact", "resolve_url", "scrub"]

ENV_VAR = "SWEEPER_STORAGE"
DEFAULT_URL = "sqlite:///sweeps.db"
MASK = "***"

# scheme://user:password@host... The password runs to the LAST "@": a password with an
# unescaped "@" is then masked whole (masking too much is the safe way to be wrong).
_USERINFO = re.compile(r"^(?P<head>[\w+.-]+://[^:/@?#]*):(?P<password>.*)@")
# Drivers also take the password as a query parameter (?password=... / ?passwd=...).
_QUERY = re.compile(r"(?P<key>[?&](?:password|passwd)=)(?P<password>[^&#]*)", re.IGNORECASE)


def resolve_url(url: str | None = None) -> str:
    """The storage URL to use: ``url``, else ``$SWEEPER_STORAGE``, else ``sqlite:///sweeps.db``.

    Reading the URL from the environment keeps passwords off command lines (and out of
    ``ps`` and shell history).

    Example:
        >>> resolve_url("sqlite:///x.db")
        'sqlite:///x.db'
    """
    if url:
        return url
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``; every shown URL goes through this.

    Example:
        >>> redact("postgresql://sweeper:hunter2@db:5432/sweeps")
        'postgresql://sweeper:***@db:5432/sweeps'
    """
    url = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", url, count=1)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}", url)


def _passwords(url: str) -> set[str]:
    """The password strings in ``url``, raw and percent-decoded."""
    found = [m["password"] for m in _USERINFO.finditer(url)]
    found += [m["password"] for m in _QUERY.finditer(url)]
    return {p for raw in found for p in (raw, unquote(raw)) if p}


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with the URL and its password masked."""
    text = text.replace(url, redact(url))
    # Longest first, so a decoded password that contains the raw one is masked whole.
    for password in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(password, MASK)
    return text
