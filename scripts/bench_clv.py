"""The CLV benchmark (`scripts/bench.py --clv --customers N`): customers simulated in Spark
from known BG/NBD and Gamma-Gamma parameters, written as a lake; `revseg clv` end to end
on it (summary, fits, scores, writes), with the time of each part and the recovered
parameters against the truth; and, with `--pymc`, pymc-marketing's MAP fit and expected
purchases on the same customers' summary, side by side.

pymc-marketing is a peer to compare with, not a dependency: it runs in a subprocess of
`--pymc-python` (an environment with the `bench` extra), under a time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRUTH = {"r": 0.5, "alpha": 10.0, "a": 0.8, "b": 2.5}
SPEND = {"p": 6.0, "q": 4.0, "gamma": 15.0}
START, END = "2023-01-01", "2024-06-30"
CALIBRATION_END, HOLDOUT_END = "2024-03-31", "2024-06-30"
ENV = {"SPARK_LOCAL_IP": "127.0.0.1"}

GENERATE = """
import sys
from datetime import date
from revseg.clv.simulate import Simulation, simulated_transactions
from revseg.session import build_local_session
from pyspark.sql import functions as F
customers, seed, lake = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
spark = build_local_session({{"spark.driver.memory": "4g", "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8"}})
sim = Simulation(customers, "bgnbd", {truth}, {spend}, date.fromisoformat("{start}"),
    date.fromisoformat("{end}"), seed=seed, partitions=max(8, customers // 250_000))
rows = simulated_transactions(spark, sim)
rows = rows.withColumn("transaction_date", F.to_date("transaction_ts"))
rows.repartition("transaction_date").write.partitionBy("transaction_date").parquet(lake)
print(spark.read.parquet(lake).count())
"""

PYMC = """
import sys, time
import pandas as pd
data = pd.read_parquet(sys.argv[1])
started = time.perf_counter()
from pymc_marketing.clv import BetaGeoModel
model = BetaGeoModel(data=data)
model.fit(method="map")
fitted = time.perf_counter()
expected = model.expected_purchases(future_t=52)
total = float(expected.mean(("chain", "draw")).sum())
done = time.perf_counter()
found = getattr(model.fit_result, "posterior", model.fit_result)
params = {k: float(found[k].mean()) for k in ("r", "alpha", "a", "b")}
print("PYMC", fitted - started, done - fitted, done - started, params, total)
"""


def run(
    cmd: list[str], what: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:

    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc


def ensure_lake(lake: Path, customers: int, seed: int) -> float | None:
    """Simulate the customers' transactions into a lake once; reused across runs."""
    if any(lake.glob("transaction_date=*")):
        return None
    lake.parent.mkdir(parents=True, exist_ok=True)
    code = GENERATE.format(truth=TRUTH, spend=SPEND, start=START, end=END)
    started = time.perf_counter()
    proc = run([sys.executable, "-c", code, str(customers), str(seed), str(lake)], "simulation")
    print(f"simulated {customers:,} customers: {proc.stdout.split()[-1]} transactions in {lake}")
    return time.perf_counter() - started


def run_revseg_clv(lake: Path, out: Path) -> tuple[float, dict[str, float], str]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "revseg", "clv", "--config", "conf/bench_clv.yaml"]
    cmd += ["--set", f"source.path={lake}", "--set", f"output.path={out}"]
    cmd += ["--calibration-end", CALIBRATION_END, "--holdout-end", HOLDOUT_END]
    started = time.perf_counter()
    proc = run(cmd, "revseg clv")
    elapsed = time.perf_counter() - started
    stages = {}
    for line in proc.stdout.splitlines():
        if line.startswith("stages: "):
            for part in line.removeprefix("stages: ").split(", "):
                name, seconds, _ = part.rsplit(" ", 2)
                stages[name] = float(seconds)
    return elapsed, stages, proc.stdout


def fitted_parameters(out: Path) -> dict[str, dict[str, float]]:
    from deltalake import DeltaTable

    rows = DeltaTable(str(out / "clv_models")).to_pyarrow_table().to_pylist()
    return {r["model"]: dict(r["parameters"]) for r in rows}


def run_pymc(out: Path, python: str, limit: float) -> dict[str, Any]:
    """pymc-marketing on the same customers' summary (from customer_clv): MAP fit, then
    expected purchases over 52 weeks; its failure (memory, time limit) is reported."""
    from deltalake import DeltaTable

    summary = out.parent / "pymc_summary.parquet"
    table = DeltaTable(str(out / "customer_clv")).to_pyarrow_table(
        columns=["customer_id", "frequency", "recency", "T"]
    )
    import pyarrow.parquet as pq

    pq.write_table(table, summary)
    try:
        proc = subprocess.run(
            [python, "-c", PYMC, str(summary)],
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"no result within the time limit of {limit:.0f} s"}
    finally:
        summary.unlink(missing_ok=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PYMC ")), None)
    if proc.returncode != 0 or line is None:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        killed = " (killed: out of memory?)" if proc.returncode in (-9, 137) else ""
        return {"failed": f"exit {proc.returncode}{killed}: {last}"}
    fit_s, predict_s, total_s, params = line.split(" ", 4)[1:5]
    found = re.search(r"\{.*\}", line)
    return {
        "fit_seconds": float(fit_s),
        "predict_seconds": float(predict_s),
        "seconds": float(total_s),
        "parameters": json.loads(found.group(0).replace("'", '"')) if found else params,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--pymc", action="store_true", help="also run pymc-marketing")
    parser.add_argument("--pymc-python", default=sys.executable, help="python with pymc-marketing")
    parser.add_argument("--pymc-limit", type=float, default=1800, help="its time limit (s)")
    parser.add_argument("--keep-output", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    data = args.data_dir if args.data_dir.is_absolute() else ROOT / args.data_dir
    lake = data / f"clv-lake-{args.customers}-seed{args.seed}"
    out = data / f"clv-out-{args.customers}"
    generated = ensure_lake(lake, args.customers, args.seed)
    result: dict[str, Any] = {"customers": args.customers, "simulation_seconds": generated}
    try:
        seconds, stages, summary = run_revseg_clv(lake, out)
        print(summary)
        fitted = fitted_parameters(out)
        errors = {
            model: {k: (v - truth[k]) / truth[k] for k, v in fitted[model].items()}
            for model, truth in (("bgnbd", TRUTH), ("gamma_gamma", SPEND))
        }
        result |= {"revseg_seconds": seconds, "stages": stages, "recovery_errors": errors}
        if args.pymc:
            result["pymc"] = run_pymc(out, args.pymc_python, args.pymc_limit)
    finally:
        if not args.keep_output:
            shutil.rmtree(out, ignore_errors=True)
    print(
        f"customers {args.customers:,}: revseg clv {seconds:.1f} s end to end ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
        + ")"
    )
    for model, found in errors.items():
        shown = ", ".join(f"{k} {100 * e:+.2f}%" for k, e in found.items())
        print(f"  {model} recovered: {shown}")
    pymc = result.get("pymc")
    if pymc is not None:
        if "failed" in pymc:
            print(f"  pymc-marketing at {args.customers:,} customers: failed, {pymc['failed']}")
        else:
            fit_score = stages.get("fit", 0.0) + stages.get("score", 0.0)
            print(
                f"  pymc-marketing MAP fit + expected purchases {pymc['seconds']:.1f} s "
                f"(fit {pymc['fit_seconds']:.1f} s) on the summary; revseg fit + score "
                f"{fit_score:.1f} s: ratio {pymc['seconds'] / fit_score:.1f}x; against revseg "
                f"end to end: {pymc['seconds'] / seconds:.2f}x"
            )
            result["ratio_fit_score"] = pymc["seconds"] / fit_score
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
