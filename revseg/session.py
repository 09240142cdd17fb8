"""The SparkSession: reuse the one a cluster gives, or build a local one with Delta.

Under spark-submit or on Databricks the session (and its Delta set-up) belongs to the
platform and is used as it is. Only a plain `python` process with no session builds one:
local mode, Delta from pip, loopback networking.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping

from pyspark.sql import SparkSession

from revseg.io.paths import redacting_logger

logger = redacting_logger(__name__)

LOCAL_DEFAULTS: dict[str, str] = {
    "spark.master": "local[*]",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # Customer-level aggregations have millions of distinct keys: the first-level "fast"
    # hash map only adds a lookup that misses (measured ~8% of the job at 20M rows).
    "spark.sql.codegen.aggregate.map.twolevel.enabled": "false",
    # Delta reads its log with 50 tasks by default: overhead for a laptop-sized log.
    "spark.databricks.delta.snapshotPartitions": "4",
    # A local lake has one directory per day: listing them in a Spark job costs seconds.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "10000",
}


def launched_by_platform() -> bool:
    """True under spark-submit (its Python runner passes a gateway to the JVM it started)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def is_classic(spark: SparkSession) -> bool:
    """A classic session (a JVM in this process's reach), not a Spark Connect client
    (Databricks serverless, shared access mode, `SparkSession.builder.remote`)."""
    return not type(spark).__module__.startswith("pyspark.sql.connect")


def describe(spark: SparkSession) -> str:
    """The session's master, or that it is a Spark Connect session: for the log."""
    if not is_classic(spark):
        return "Spark Connect"
    return f"master {spark.conf.get('spark.master', 'unknown')}"


def will_build_local_session(settings: Mapping[str, str]) -> bool:
    """True when `get_session` would start a local session of its own, reading the local
    file system (no active session, no spark-submit, no Connect server elsewhere, no other
    default file system)."""
    remote = settings.get("spark.remote") or os.environ.get("SPARK_REMOTE") or "local"
    return (
        SparkSession.getActiveSession() is None
        and not launched_by_platform()
        and remote.startswith("local")
        and "spark.hadoop.fs.defaultFS" not in settings
    )


def get_session(settings: Mapping[str, str], app_name: str = "revseg") -> SparkSession:
    """The active session, the platform's, or a new local one with Delta and `settings`."""
    active = SparkSession.getActiveSession()
    if active is not None:
        logger.info("using the active Spark session (%s)", describe(active))
        return active
    if launched_by_platform():
        session = SparkSession.builder.appName(app_name).getOrCreate()
        logger.info("using the Spark session of spark-submit (%s)", describe(session))
        return session
    return build_local_session(settings, app_name)


def build_local_session(settings: Mapping[str, str], app_name: str = "revseg") -> SparkSession:
    """Local mode with Delta from pip; `settings` override the defaults.

    `spark.remote` (a setting, or the SPARK_REMOTE variable as pyspark reads it) makes it a
    Spark Connect session instead: `local[2]` starts a local Connect server with Delta,
    `sc://host:port` connects to a server, which brings its own Delta set-up."""
    from delta import configure_spark_with_delta_pip

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (pandas functions: the CLV scores) run this interpreter, whose
    # environment has revseg's dependencies, not whichever `python3` is first on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = {**LOCAL_DEFAULTS, **settings}
    remote = conf.pop("spark.remote", None) or os.environ.get("SPARK_REMOTE")
    if remote and not remote.startswith("local"):
        session = SparkSession.builder.remote(remote).appName(app_name).getOrCreate()
        logger.info("connected to Spark Connect at %s", remote.split(";")[0])
        return session
    if remote:  # a local Connect server: the master is the URL, set once
        conf.pop("spark.master", None)
    builder = SparkSession.builder.appName(app_name)
    if remote:
        builder = builder.remote(remote)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if "spark.jars" not in conf:  # else offline: Delta's jars given as local paths
        builder = configure_spark_with_delta_pip(builder)
    with warnings.catch_warnings():
        # A local Connect server starts with these settings; its client then tries to set
        # the static ones again, and warns about each.
        warnings.filterwarnings("ignore", message="Failed to set", category=UserWarning)
        session = builder.getOrCreate()
    if is_classic(session):  # Connect has no SparkContext; its server logs on its own
        session.sparkContext.setLogLevel(conf.get("spark.log.level", "WARN"))
    kind = f"Spark Connect server {remote}" if remote else conf["spark.master"]
    logger.info("started a local Spark session (%s)", kind)
    return session
