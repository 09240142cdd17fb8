"""Storage paths: URIs pass through; plain local paths become absolute."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from revseg.errors import SourceError

if TYPE_CHECKING:
    from revseg.config import InputTable

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def qualify(path: str) -> str:
    """An absolute path or a URI (s3a://, abfss://, dbfs:/, file:/) for Spark and Delta.

    Delta's table builder rejects relative locations, and a relative path would mean the
    driver's working directory anyway, so it is resolved there, once.
    """
    if _SCHEME.match(path):
        return path
    return os.path.abspath(path)


def local_path(path: str) -> str | None:
    """The file-system path of a local location (plain, or `file:`); None for a URI of
    another file system (s3a://, abfss://, dbfs:/), which only Spark can look at."""
    if path.startswith("file:"):
        return re.sub(r"^file:(//)?", "", path) or "/"
    return None if _SCHEME.match(path) else os.path.abspath(path)


def check_local_inputs(tables: Mapping[str, InputTable | None]) -> None:
    """Stop with `source.path '/my/lake' does not exist` for each input (by its config key)
    at a local path that is not there: checked before a Spark session starts, so a typo
    costs no JVM start and prints no Java warning."""
    missing = []
    for key, table in tables.items():
        location = table.path if table is not None else None
        local = local_path(location) if location else None
        if local is not None and not os.path.exists(local):
            missing.append(f"{key}.path {location!r} does not exist")
    if missing:
        raise SourceError("; ".join(missing))


def join(base: str, name: str) -> str:
    return f"{qualify(base).rstrip('/')}/{name}"


# `scheme://user:secret@host`: the secret may hold `/` and `:` (AWS secret keys do), so the
# user-info runs to the last `@` before the first `/` that follows it... as far as it can
# be told: up to an `@` that is followed by a host name.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s:]+:[^@\s]+@(?=[\w.-]+)")
# A secret in a query string (`?sig=…&`), a connection string (`;AccountKey=…;`) or an
# option (`client_secret=…`): any key that names a signature, token, key, secret or
# password, alone or as the end of a longer name (`access_token`, `api_key`).
_SECRET_NAMES = (
    r"sig|signature|sas|sharedaccesssignature|password|passwd|pwd|credentials?"
    r"|x-amz-(?:signature|credential|security-token)"
    r"|(?:[a-z0-9]+_|account|access|api|client|private|secret|sharedaccess|session|auth)?"
    r"(?:key|token|secret)"
)
_SECRET_VALUE = re.compile(rf"(?i)(?<![\w-])({_SECRET_NAMES})=[^&;\s'\"]+")
# A Spark or Hadoop setting whose dotted name has a secret part, with its value:
# `fs.azure.account.key.<account>=…`, `spark.hadoop.fs.s3a.secret.key=…`.
_SECRET_SETTING = re.compile(
    r"(?i)\b((?:[\w-]+\.)+(?:key|secret|token|password|sas)(?:\.[\w-]+)*)=[^&;\s'\"]+"
)


def redact(text: str) -> str:
    """Text with credentials taken out (`s3a://KEY:SECRET@bucket`, SAS tokens and keys in
    query strings, `AccountKey=` in connection strings, `client_secret=` options): for logs,
    the run log, the summary and error messages. `container@account` (abfss, wasbs) names
    no secret and stays."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    text = _SECRET_SETTING.sub(lambda m: f"{m.group(1)}=***", text)
    return _SECRET_VALUE.sub(lambda m: f"{m.group(1)}=***", text)


class RedactingFilter(logging.Filter):
    """A log filter that redacts each record's message (arguments and traceback included),
    so no handler it is attached to writes a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        if record.exc_info:
            import traceback

            message += "\n" + redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = message, None
        return True


def redacting_logger(name: str) -> logging.Logger:
    """The module logger `name`, with credentials redacted from every record it logs (a
    notebook's handlers included, where revseg configures no handler of its own)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
