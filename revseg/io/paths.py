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


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@")
_SECRET_QUERY = re.compile(r"(?i)\b(sig|signature|sas|token|secret|key|password)=[^&\s]+")


def redact(text: str) -> str:
    """Text with credentials taken out of any URI in it (`s3a://KEY:SECRET@bucket`, SAS
    tokens in query strings): for logs, the run log and error messages. `container@account`
    (abfss, wasbs) names no secret and stays."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", text)
