"""spark-submit on a real Spark standalone cluster (a master and a worker on 127.0.0.1, the
job's executor a process of its own, apart from the driver).

The job is submitted as the spark-submit guide shows: Delta from --packages, revseg and
its Python dependencies in one artifact (`dist/revseg.pex`, shipped with --files and run
as the driver's and the executors' Python), conf/cluster.yaml with the paths overridden
(and the suite's settings for small data). The pex runs on a bare Python (a venv without
packages): revseg and PyYAML come from the artifact only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyspark
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from revseg.sample import SampleSpec, sample_transactions
from tests.lakes import JVM_OPTIONS, SMALL_RUN_SETTINGS, write_lake

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
DELTA_PACKAGE = "io.delta:delta-spark_4.1_2.13:4.3.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_NO_DAEMONIZE="1",
        SPARK_DAEMON_JAVA_OPTS=JVM_OPTIONS,  # the master and the worker
    )
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("cluster")
    port, ui = free_port(), free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    logs = []
    procs = []

    def start(name: str, *args: str) -> None:
        log = open(work / f"{name}.log", "w")  # noqa: SIM115 -- closed below
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [spark_class, *args],
                env=spark_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
        )

    master = f"spark://127.0.0.1:{port}"
    start(
        "master",
        "org.apache.spark.deploy.master.Master",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--webui-port",
        str(ui),
    )
    start(
        "worker",
        "org.apache.spark.deploy.worker.Worker",
        "--host",
        "127.0.0.1",
        "--cores",
        "2",
        "--memory",
        "2g",
        "--webui-port",
        str(free_port()),
        "--work-dir",
        str(work / "w"),
        master,
    )
    try:
        _wait_for_workers(ui, 1, timeout=120)
        yield master
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


def _wait_for_workers(ui_port: int, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
                state = json.load(r)
            if sum(w.get("state") == "ALIVE" for w in state.get("workers", [])) >= count:
                return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{count} Spark workers did not register within {timeout} s")


def test_spark_submit_on_standalone_cluster(
    cluster: str, spark: SparkSession, tmp_path: Path
) -> None:
    spec = SampleSpec(
        rows=3000, customers=200, start=date(2024, 1, 1), end=date(2024, 3, 31), plain=True
    )
    lake = write_lake(sample_transactions(spark, spec), tmp_path / "lake")
    out = tmp_path / "out"
    bare = tmp_path / "bare"  # a Python without revseg, PyYAML or pyspark
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    subprocess.run(
        ["bash", str(REPO / "scripts" / "build_dist.sh")],
        check=True,
        cwd=REPO,
        env={**spark_env(), "PEX_SHEBANG": str(bare / "bin" / "python")},
        capture_output=True,
    )
    pex = REPO / "dist" / "revseg.pex"
    command = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master",
        cluster,
        "--packages",
        DELTA_PACKAGE,
        "--conf",
        "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf",
        "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.executor.memory=1g",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        # the suite's settings for small data (interpreted expressions and the like)
        *[arg for key, value in SMALL_RUN_SETTINGS.items() for arg in ("--conf", f"{key}={value}")],
        "--files",
        str(pex),
        "--conf",
        "spark.pyspark.python=./revseg.pex",  # the executors': the copy --files gives each
        "--conf",
        f"spark.pyspark.driver.python={pex}",
        str(REPO / "tests" / "fixtures" / "probe_then_run.py"),
        "--config",
        str(REPO / "conf" / "cluster.yaml"),
        "--set",
        f"source.path={lake}",
        "--set",
        f"output.path={out}",
    ]
    # Run from an unrelated directory: nothing may depend on the repository as cwd.
    env = {k: v for k, v in spark_env().items() if not k.startswith("PYSPARK_")}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "succeeded" in done.stdout
    assert f"master {cluster}" in done.stderr  # the platform's session, not a local one
    probes = [
        json.loads(line.removeprefix("executor: "))
        for line in done.stdout.splitlines()
        if line.startswith("executor: ")
    ]
    assert probes, done.stdout
    for probe in probes:
        assert probe["prefix"] == str(bare)  # the bare Python ...
        assert probe["pex"].endswith("revseg.pex") and probe["pex"] != str(pex)  # ... the copy
        for module in (probe["revseg"], probe["yaml"]):  # ... and modules from the artifact
            assert "/pex/" in module and not module.startswith(f"{REPO}/"), module

    segments = DeltaTable(str(out / "customer_segments"))
    assert segments.metadata().partition_columns == ["segment", "period"]
    rows = segments.to_pyarrow_table().to_pylist()
    periods = {r["period"] for r in rows}
    assert periods == {"2024-01", "2024-02", "2024-03", "2024-Q1", "2024"}
    local = spark.read.parquet(lake).agg({"amount": "sum"}).first()
    assert local is not None
    year_total = sum(r["revenue"] for r in rows if r["period"] == "2024")
    assert year_total == local[0]
