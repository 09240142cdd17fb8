"""Storage paths: URIs pass through; plain local paths become absolute."""

from __future__ import annotations

import os
import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def qualify(path: str) -> str:
    """An absolute path or a URI (s3a://, abfss://, dbfs:/, file:/) for Spark and Delta.

    Delta's table builder rejects relative locations, and a relative path would mean the
    driver's working directory anyway, so it is resolved there, once.
    """
    if _SCHEME.match(path):
        return path
    return os.path.abspath(path)


def join(base: str, name: str) -> str:
    return f"{qualify(base).rstrip('/')}/{name}"
