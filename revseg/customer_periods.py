"""The first pass: transactions as read -> customer x period rows, in one scan and one
shuffle by customer, with every row and cent counted on the way (`DataFrame.observe`).

The quarantine pass starts from the same `checked_transactions`, so a row's reason is
decided by one expression in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from revseg import contract
from revseg.caching import persisted
from revseg.config import METRIC_SOURCE_COLUMNS, TransactionTypes
from revseg.conform import conform_transactions
from revseg.fx import convert, effective_rates
from revseg.metrics import (
    MEASURE_COLUMNS,
    TOP_DIMENSIONS,
    attribute_refunds,
    deduplicate,
    month_aggregates,
    roll_up,
    top_values,
    transaction_facts,
    with_customer_first,
)
from revseg.periods import Grain, PeriodPlan, local_date
from revseg.quality import (
    RowRules,
    domestic_only,
    is_blank,
    is_refund,
    normalised_currency,
    reason_counts,
    with_rejection_reason,
)
from revseg.quarantine import extra_copies, is_quarantined, transaction_key
from revseg.result import (
    CONVERTED_ROWS,
    DUPLICATE_KEYS,
    DUPLICATE_ROWS,
    FIRST_MONTH,
    INPUT_ROWS,
    LAST_MONTH,
    OUTSIDE_KEPT,
    REFUND_CENTS,
    REFUND_ROWS,
    UNATTRIBUTED_REFUNDS,
    VALID_ROWS,
    RunCounts,
    revenue_name,
)


@dataclass(frozen=True)
class FxInput:
    """The checked FX rates a conversion uses, and each currency's first rate date."""

    rates: DataFrame
    first_dates: Mapping[str, date]
    max_staleness_days: int


@dataclass(frozen=True)
class PassOptions:
    """What the first pass (and the quarantine pass) need to know, as plain values."""

    timezone: str
    reporting_currency: str
    types: TransactionTypes
    rules: RowRules
    groups: tuple[str, ...] = ()  # tiers.by
    metrics: tuple[str, ...] = ()  # metrics.include
    refunds_to_sale: bool = False  # revenue.refund_attribution: original
    guest_customer_id: str | None = None
    fx: FxInput | None = None


def checked_transactions(
    source: DataFrame,
    columns: Mapping[str, str],
    options: PassOptions,
    keep_source: bool = False,
) -> DataFrame:
    """Transactions as read -> canonical columns, converted, each with its `reason` (null:
    counted). The first pass and the quarantine pass both start here."""
    conformed = conform_transactions(source, columns, keep_source)
    guest = options.guest_customer_id
    if guest is not None:
        conformed = conformed.withColumn(
            "customer_id",
            F.when(is_blank("customer_id"), F.lit(guest)).otherwise(F.col("customer_id")),
        )
    conformed = with_reporting_amounts(conformed, options)
    return with_rejection_reason(
        conformed, options.reporting_currency, options.types, options.rules
    )


def with_reporting_amounts(frame: DataFrame, options: PassOptions) -> DataFrame:
    """`reporting_amount` and `fx_problem` for each row (see `revseg.fx`)."""
    if options.fx is None:
        return frame.withColumns(domestic_only(options.reporting_currency))
    return convert(
        frame,
        options.reporting_currency,
        local_date("transaction_ts", options.timezone),
        effective_rates(options.fx.rates, options.fx.max_staleness_days),
        options.fx.first_dates,
    )


class PeriodRows(NamedTuple):
    """Customer x period rows (lazy), the observations counted while they are computed,
    frames persisted on the way (to unpersist once the rows are cached), and the rows read
    with the input counts, for a run in which no row reached the observations."""

    rows: DataFrame
    observations: Mapping[str, Observation]
    cached: tuple[DataFrame, ...] = ()
    read: tuple[DataFrame, tuple[Column, ...]] | None = None

    def counts(self) -> tuple[RunCounts, tuple[int, ...]]:
        """The run's counts, and the hashes of duplicated transaction keys (after an action
        over `rows` has run)."""
        values: dict[str, Any] = {}
        for observation in self.observations.values():
            values.update(observed_metrics(observation))
        if INPUT_ROWS not in values and self.read is not None:
            # No row was valid, and Spark skipped the observed stages after the empty
            # shuffle: the rows read are counted again, by themselves (a rare, small read).
            frame, counts = self.read
            found = frame.agg(*counts).first()
            values.update(found.asDict() if found is not None else {})
        keys = tuple(values.pop(DUPLICATE_KEYS, None) or ())
        return RunCounts.from_observed(values), keys


def observed_metrics(observation: Observation) -> dict[str, Any]:
    """An observation's metrics; none when Spark never ran the part of the plan it observes
    (adaptive execution drops the stages after one that came out empty): no row got there."""
    try:
        return dict(observation.get)
    except Exception as err:
        if "PythonSQLUtils.toPyRow" not in str(err):  # the metrics row Spark left empty
            raise
        return {}


def customer_period_rows(
    source: DataFrame,
    columns: Mapping[str, str],
    options: PassOptions,
    grains: tuple[Grain, ...],
    plan: PeriodPlan | None = None,
) -> PeriodRows:
    """Transactions as read -> customer x period rows keyed by (grain_idx, period_key); lazy,
    with its observations."""
    present = [m for m in options.metrics if METRIC_SOURCE_COLUMNS[m] in columns]
    measures = tuple(m for m in present if m in MEASURE_COLUMNS)
    tops = tuple(m for m in present if m in TOP_DIMENSIONS)
    groups = options.groups
    # Dimension columns the top_* metrics need beyond the tiers.by groups (blank: none).
    dimensions = tuple(
        dict.fromkeys(TOP_DIMENSIONS[t] for t in tops if TOP_DIMENSIONS[t] not in groups)
    )
    counted = counted_transactions(source, columns, options, dimensions, measures)
    observations, unique = {"input": counted.observation}, counted.unique
    if plan is not None:
        # Decided on the kept copy, after refunds moved to their sale: a refund read from
        # after the range may belong to a sale inside it, and a copy inside the range may
        # be one of a transaction kept (and counted) before it.
        in_range = in_read_months(plan)
        observations["range"] = Observation("range")
        unique = unique.observe(
            observations["range"],
            F.coalesce(F.sum(F.when(~in_range, F.col("copies"))), F.lit(0)).alias(OUTSIDE_KEPT),
        ).where(in_range)
    observations["unique"] = Observation("unique")
    unique = unique.observe(
        observations["unique"],
        *kept_counts(options.refunds_to_sale),
        *revenue_by_grain(grains, plan),
        # names the duplicated transactions for the quarantine pass (few: they are capped
        # by quality.max_quarantine_fraction before anything is written)
        F.collect_list(F.when(F.col("copies") > 1, transaction_key())).alias(DUPLICATE_KEYS),
    )
    by_week = any(grain.name == "week" for grain in grains)
    cached = []
    if tops:
        # Read twice, by the month aggregates and by the top values: kept, not recomputed.
        unique = persisted(unique, "the de-duplicated transactions")
        cached.append(unique)
    months = month_aggregates(unique, groups, measures, by_week)
    key_runs = {g.name: plan.key_runs(g) for g in grains} if plan is not None else None
    customer_periods = roll_up(with_customer_first(months), grains, key_runs, groups, measures)
    if tops:
        keys = ["customer_id", *groups, "grain_idx", "period_key"]
        customer_periods = customer_periods.join(
            top_values(unique, tops, grains, key_runs, groups), keys, "left"
        )
    return PeriodRows(customer_periods, observations, tuple(cached), counted.read)


class CountedTransactions(NamedTuple):
    """The transactions a run counts, de-duplicated (one row per customer and transaction,
    partitioned by customer; lazy), with the observation of the rows read and, for a run
    in which no row reached it, the rows read with their counts."""

    unique: DataFrame
    observation: Observation
    read: tuple[DataFrame, tuple[Column, ...]]


def counted_transactions(
    source: DataFrame,
    columns: Mapping[str, str],
    options: PassOptions,
    dimensions: Sequence[str] = (),
    measures: Sequence[str] = (),
) -> CountedTransactions:
    """Transactions as read -> the valid ones, converted, refunds booked as configured,
    copies merged: what the segments count and the CLV summary models. The rows read are
    counted by reason on the way (observation "input")."""
    groups = options.groups
    checked = checked_transactions(source, columns, options)
    by_original = options.refunds_to_sale
    foreign = normalised_currency() != F.lit(options.reporting_currency)
    checked = checked.withColumns(
        {
            "foreign": foreign,
            **{
                g: F.when(is_blank(g), F.lit(contract.UNKNOWN_GROUP)).otherwise(F.trim(g))
                for g in groups
            },
            **{d: F.when(~is_blank(d), F.trim(d)) for d in dimensions},
        }
    )
    original = ["original_transaction_id"] if by_original else []
    facts = transaction_facts(
        checked,
        options.timezone,
        keep=("reason", "foreign", *groups, *dimensions, *original),
        refund=is_refund(),
        amount="reporting_amount",
        measures=measures,
        cost="reporting_cost",
    )
    valid = F.col("reason").isNull()
    observation = Observation("input")
    # Every valid row read takes part in de-duplication, also those of the days read beyond
    # the months (`prune_to_plan`): a copy there may be the one a full run keeps.
    input_counts = (
        *reason_counts(),
        F.count(F.when(valid & F.col("foreign"), 1)).alias(CONVERTED_ROWS),
    )
    read = facts
    facts = facts.observe(observation, *input_counts).where(valid)
    by_customer = facts.repartition("customer_id")
    if by_original:
        by_customer = attribute_refunds(by_customer)
    unique = deduplicate(by_customer, options.timezone, (*groups, *dimensions), measures)
    return CountedTransactions(unique, observation, (read, input_counts))


def kept_counts(refunds_to_sale: bool) -> list[Column]:
    """What is counted of the de-duplicated transactions: rows, extra copies, refunds (rows
    and cents), refunds whose sale was not found, and the first and last month."""
    refund = F.col("is_refund")
    unattributed = F.count(F.when(F.col("unattributed"), 1)).alias(UNATTRIBUTED_REFUNDS)
    return [
        F.count(F.lit(1)).alias(VALID_ROWS),
        F.sum(F.col("copies") - 1).alias(DUPLICATE_ROWS),
        F.count(F.when(refund, 1)).alias(REFUND_ROWS),
        F.coalesce(-F.sum(F.when(refund, F.col("amount_cents"))), F.lit(0)).alias(REFUND_CENTS),
        *([unattributed] if refunds_to_sale else []),
        F.min("month_idx").alias(FIRST_MONTH),
        F.max("month_idx").alias(LAST_MONTH),
    ]


def in_read_months(plan: PeriodPlan, month: Column | None = None) -> Column:
    """Rows whose month (`month_idx`) is one the plan reads."""
    month = F.col("month_idx") if month is None else month
    inside = F.lit(False)
    for low, high in plan.read_ranges:
        inside = inside | month.between(low.index, high.index)
    return inside


def revenue_by_grain(grains: Sequence[Grain], plan: PeriodPlan | None) -> list[Column]:
    """Valid revenue in the months each calendar grain writes: what its output must add up to.

    Rolling windows overlap (each month is in several), so they have no such total.
    """
    sums = []
    for grain in grains:
        if grain.rolling:
            continue
        cents = F.col("amount_cents")
        if plan is not None and grain.name == "week":
            weeks = [F.col("week_key").between(low, high) for low, high in plan.key_runs(grain)]
            cents = F.when(reduce(or_, weeks), cents)
        elif plan is not None:
            months = [m.index for m in plan.months_of(grain)]
            cents = F.when(F.col("month_idx").isin(months), cents)
        sums.append(F.coalesce(F.sum(cents), F.lit(0)).alias(revenue_name(grain.name)))
    return sums


def quarantine_rows(
    source: DataFrame,
    columns: Mapping[str, str],
    options: PassOptions,
    duplicated: Sequence[int],
    quarantine_excluded: bool,
) -> DataFrame:
    """The rows a run puts in quarantine, as read (a second pass over the same files, those
    of the days beyond the months included, as in the first pass): the rejected rows, and
    every copy but the kept one of the `duplicated` transactions."""
    checked = checked_transactions(source, columns, options, keep_source=True)
    parts = [checked.where(is_quarantined(quarantine_excluded))]
    if duplicated:
        keys = source.sparkSession.createDataFrame([(k,) for k in duplicated], "_key long")
        # all copies read, as in the first pass's de-duplication
        parts.append(extra_copies(checked.where(F.col("reason").isNull()), keys))
    return parts[0].unionByName(parts[1]) if len(parts) > 1 else parts[0]


def row_rules(
    timezone: str, min_date: date | None, max_abs_amount: Decimal | None, as_of: date | None
) -> RowRules:
    """The configured row limits as instants: days begin at midnight in `timezone`."""
    zone = ZoneInfo(timezone)
    return RowRules(
        not_before=datetime.combine(min_date, time(), zone) if min_date else None,
        not_after=datetime.combine(as_of + timedelta(days=1), time(), zone) if as_of else None,
        max_abs_amount=max_abs_amount,
    )
