"""Caching a frame that is read twice, where the platform allows it.

Databricks serverless compute refuses `persist` (the platform manages caching itself); a
run there recomputes the frame where it is read again, which costs time, not correctness.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from revseg.io.paths import redacting_logger

logger = redacting_logger(__name__)


def persisted(frame: DataFrame, what: str) -> DataFrame:
    """`frame` kept in memory and on disk for its next reads; as it is where caching is
    refused (said in the log: each read then recomputes it)."""
    try:
        return frame.persist(StorageLevel.MEMORY_AND_DISK)
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        logger.info("%s is not cached (%s): each read recomputes it", what, first_line)
        return frame


def unpersisted(frame: DataFrame) -> None:
    """Release a frame's cache (nothing where it was never cached)."""
    try:
        frame.unpersist()
    except Exception as err:
        logger.debug("unpersist refused: %s", err)
