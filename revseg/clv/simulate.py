"""Customers simulated in Spark from known model parameters, deterministic by seed: the
transactions a BG/NBD or Pareto/NBD purchase process and a Gamma-Gamma spend process give.
The recovery tests and the benchmark fit the models on them and compare with the truth.

Each customer makes a first purchase on a day drawn uniformly from the first
`cohort_days` after `start`, and is then followed to `end`; purchase times are continuous
(in the time unit) and land on the day they fall in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg.clv.models import BGNBD, PARETO_NBD

_RAW = "customer long, k long, seconds long, cents long"


@dataclass(frozen=True)
class Simulation:
    """What to simulate: `customers`, the purchase `model` and its parameters, the
    Gamma-Gamma `spend` parameters, the window, the time unit in days and the seed."""

    customers: int
    model: str = BGNBD
    parameters: Mapping[str, float] = field(
        default_factory=lambda: {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}
    )
    spend: Mapping[str, float] = field(default_factory=lambda: {"p": 6.0, "q": 4.0, "gamma": 15.0})
    start: date = date(2023, 1, 1)
    end: date = date(2024, 6, 30)
    cohort_days: int = 84
    unit_days: float = 7.0
    seed: int = 7
    partitions: int = 8


def purchase_times(
    rng: np.random.Generator, model: str, parameters: Mapping[str, float], T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The customers' repeat purchases in (0, T] (time units after each one's first): the
    customer's index and the time of each, ordered by customer, then time."""
    n = len(T)
    lam = rng.gamma(parameters["r"], 1.0 / parameters["alpha"], n)
    who: list[np.ndarray] = []
    when: list[np.ndarray] = []
    if model == BGNBD:
        p = rng.beta(parameters["a"], parameters["b"], n)
        now, idx = np.zeros(n), np.arange(n)
        while len(idx):
            now[idx] += rng.exponential(1.0 / lam[idx])
            idx = idx[now[idx] <= T[idx]]
            who.append(idx)
            when.append(now[idx].copy())
            idx = idx[rng.random(len(idx)) >= p[idx]]  # may drop out after each repeat
    elif model == PARETO_NBD:
        mu = rng.gamma(parameters["s"], 1.0 / parameters["beta"], n)
        until = np.minimum(rng.exponential(1.0 / mu), T)
        counts = rng.poisson(lam * until)
        owner = np.repeat(np.arange(n), counts)
        who.append(owner)
        when.append(rng.uniform(0.0, 1.0, len(owner)) * until[owner])
    else:
        raise ValueError(f"no purchase model {model!r} to simulate")
    customers, times = np.concatenate(who), np.concatenate(when)
    order = np.lexsort((times, customers))
    return customers[order], times[order]


def simulated_transactions(spark: SparkSession, simulation: Simulation) -> DataFrame:
    """One sale per purchase (the first included) in the canonical columns, USD, amounts
    from Gamma-Gamma to the cent (at least 0.01). Same seed, same rows."""
    sim = simulation
    start_day = (sim.start - date(1970, 1, 1)).days
    last_day = (sim.end - date(1970, 1, 1)).days

    def simulate(batches: Iterator[object]) -> Iterator[object]:
        import pandas as pd

        for batch in batches:
            assert isinstance(batch, pd.DataFrame)
            ids = batch["id"].to_numpy()
            if len(ids) == 0:
                continue
            rng = np.random.default_rng([sim.seed, int(ids[0])])
            first = start_day + rng.integers(0, sim.cohort_days, len(ids))
            moment = first + rng.random(len(ids))  # the first purchase's moment in its day
            T = (last_day + 1 - moment) / sim.unit_days  # followed to the end of the last day
            who, when = purchase_times(rng, sim.model, sim.parameters, T)
            nu = rng.gamma(sim.spend["q"], 1.0 / sim.spend["gamma"], len(ids))
            # the first purchases (offset 0), then the repeats, ordered by customer
            index = np.concatenate([np.arange(len(ids)), who])
            offsets = np.concatenate([np.zeros(len(ids)), when])
            order = np.lexsort((offsets, index))
            index, offsets = index[order], offsets[order]
            # the repeats at the first's moment plus their times: each lands on its day
            instants = np.minimum(moment[index] + offsets * sim.unit_days, last_day + 0.99999)
            seconds = np.floor(instants * 86400).astype(np.int64)
            values = rng.gamma(sim.spend["p"], 1.0 / nu[index])
            cents = np.maximum(np.round(values * 100), 1).astype(np.int64)
            sequence = np.arange(len(index)) - np.searchsorted(index, index)
            yield pd.DataFrame(
                {"customer": ids[index], "k": sequence, "seconds": seconds, "cents": cents}
            )

    ids = spark.range(0, sim.customers, 1, sim.partitions)
    raw = ids.mapInPandas(simulate, _RAW)  # type: ignore[arg-type]
    customer = F.concat(F.lit("c"), F.lpad(F.col("customer").cast("string"), 9, "0"))
    return raw.select(
        customer.alias("customer_id"),
        F.concat(customer, F.lit("-"), F.col("k").cast("string")).alias("transaction_id"),
        F.timestamp_seconds("seconds").alias("transaction_ts"),
        (F.col("cents").cast("decimal(18,0)") / 100).cast("decimal(18,2)").alias("amount"),
        F.lit("USD").alias("currency"),
    )
