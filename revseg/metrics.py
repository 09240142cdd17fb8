"""Customer x period revenue metrics: months from transactions, every grain from months.

Money is summed as `bigint` cents (exact, and cheaper than Spark's decimal sums) and turned
back into `decimal(18,2)` once, at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from revseg.contract import MONEY
from revseg.periods import (
    EPOCH,
    Grain,
    grain_name,
    local_date,
    local_epoch_day,
    month_index,
    period_keys,
    period_label,
    week_key,
)

_ONE_CENT = Decimal("0.01")


def to_cents(amount: Column | str) -> Column:
    """decimal(18,2) money as exact bigint cents."""
    amount_col = F.col(amount) if isinstance(amount, str) else amount
    return (amount_col * 100).cast("long")


def to_money(cents: Column | str) -> Column:
    """bigint cents back to exact decimal(18,2) money."""
    cents_col = F.col(cents) if isinstance(cents, str) else cents
    return (cents_col.cast("decimal(20,0)") * F.lit(_ONE_CENT)).cast(MONEY)


def transaction_facts(
    transactions: DataFrame,
    timezone: str,
    keep: Sequence[str] = (),
    refund: Column | None = None,
    amount: str = "amount",
    measures: Sequence[str] = (),
    cost: str = "cost",
) -> DataFrame:
    """The few columns the aggregates need, with the local month and day of each row.

    `amount_cents` is signed: a refund (`refund` true) reduces revenue by its absolute
    amount, whatever sign the source gives it. `measures` (quantity, margin) add
    `quantity` and `cost_cents`, signed the same way; a refund without a cost reverses none.
    """
    day = local_date("transaction_ts", timezone)
    is_refund = F.lit(False) if refund is None else refund

    def signed(value: Column) -> Column:
        return F.when(is_refund, -F.abs(value)).otherwise(value)

    extra = []
    if "quantity" in measures:
        extra.append(signed(F.col("quantity")).alias("quantity"))
    if "margin" in measures:
        cost_cents = signed(to_cents(cost))
        extra.append(
            F.when(is_refund, F.coalesce(cost_cents, F.lit(0)))
            .otherwise(cost_cents)
            .alias("cost_cents")
        )
    return transactions.select(
        *keep,
        "customer_id",
        "transaction_id",
        "transaction_ts",
        signed(to_cents(amount)).alias("amount_cents"),
        is_refund.alias("is_refund"),
        *extra,
        month_index(day).alias("month_idx"),
        F.dayofmonth(day).alias("day"),
    )


MEASURE_COLUMNS = {"quantity": "quantity", "margin": "cost_cents"}


_AMOUNT_OFFSET = 10**18  # cents fit in [-10^18, 10^18): decimal(18,2) money
_LOW_SPAN = Decimal(4 * 10**18)  # (cents + offset) * 2 + refund flag: a bigint below 4 * 10^18


def amount_and_flag(cents: Column, refund: Column) -> Column:
    """`(cents + 10^18) * 2 + refund`: a non-negative bigint that orders like (cents, refund)."""
    return (cents + F.lit(_AMOUNT_OFFSET)) * 2 + refund.cast("long")


def copy_order(ts: Column, cents: Column, refund: Column) -> Column:
    """(timestamp, amount, refund flag) packed into one decimal(38,0) that orders like the tuple.

    `ts_micros * 4*10^18 + amount_and_flag`: Spark's hash aggregate can keep a `min_by` over
    a decimal in place (a min over a struct forces a sort of every transaction).
    """
    micros = F.unix_micros(ts).cast("decimal(38,0)")
    low = amount_and_flag(cents, refund).cast("decimal(38,0)")
    return (micros * F.lit(_LOW_SPAN) + low).cast("decimal(38,0)")


def attribute_refunds(facts: DataFrame) -> DataFrame:
    """Each refund moves to the moment of the sale it names (`refund_attribution: original`).

    The sale is the same customer's non-refund row whose `transaction_id` is the refund's
    `original_transaction_id`; the refund takes its timestamp (the earliest of its copies), so
    it reduces that sale's day, week and month. A refund whose sale is not among the rows
    read keeps its own moment and is flagged `unattributed`. A window by (customer, sale):
    the rows are already partitioned by customer, so it sorts within partitions and shuffles
    nothing.
    """
    refund = F.col("is_refund")
    original = F.col("original_transaction_id")
    named = refund & original.isNotNull() & (F.trim(original) != "")
    anchored = facts.withColumn(
        "_sale_id", F.when(named, original).otherwise(F.col("transaction_id"))
    )
    is_sale = ~refund & (F.col("transaction_id") == F.col("_sale_id"))
    sale_ts = F.min(F.when(is_sale, F.col("transaction_ts"))).over(
        Window.partitionBy("customer_id", "_sale_id")
    )
    attributed = anchored.withColumn("_sale_ts", sale_ts)
    found = refund & F.col("_sale_ts").isNotNull()
    return attributed.withColumns(
        {
            "transaction_ts": F.when(found, F.col("_sale_ts")).otherwise(F.col("transaction_ts")),
            "unattributed": refund & ~found,
        }
    ).drop("_sale_id", "_sale_ts", "original_transaction_id")


def deduplicate(
    facts: DataFrame, timezone: str, groups: Sequence[str] = (), measures: Sequence[str] = ()
) -> DataFrame:
    """One row per (customer_id, transaction_id), with `copies` counting how many came in.

    Of several copies the earliest is kept (by timestamp, then the smaller amount, then a sale
    before a refund), so the choice does not depend on file or task order. Month and day
    come from the kept copy; group columns (`tiers.by`) from the smallest value among them.
    An `unattributed` flag (`attribute_refunds`) is kept when any copy has it.
    The kept timestamp is a plain `min`; the amount and flag come as one bigint through
    `min_by` over the packed order, so nothing has to be unpacked from the decimal.
    """
    ts, cents, refund = F.col("transaction_ts"), F.col("amount_cents"), F.col("is_refund")
    order = copy_order(ts, cents, refund)
    extras = [MEASURE_COLUMNS[m] for m in measures]
    flags = ["unattributed"] if "unattributed" in facts.columns else []
    kept = facts.groupBy("customer_id", "transaction_id").agg(
        F.min(ts).alias("transaction_ts"),
        F.min_by(amount_and_flag(cents, refund), order).alias("low"),
        F.count(F.lit(1)).alias("copies"),
        *[F.min(group).alias(group) for group in groups],
        *[F.min_by(column, order).alias(column) for column in extras],
        *[F.max(flag).alias(flag) for flag in flags],
    )
    low = F.col("low")
    epoch_day = local_epoch_day("transaction_ts", timezone)
    day = F.date_from_unix_date(epoch_day)
    return kept.select(
        "customer_id",
        "transaction_id",
        *groups,
        "transaction_ts",
        (F.call_function("div", low, F.lit(2)) - F.lit(_AMOUNT_OFFSET)).alias("amount_cents"),
        (F.pmod(low, F.lit(2)) == 1).alias("is_refund"),
        *extras,
        *flags,
        "copies",
        month_index(day).alias("month_idx"),
        F.dayofmonth(day).alias("day"),
        week_key(epoch_day).alias("week_key"),
    )


def day_bit(day_of_month: Column) -> Column:
    """1 << day: OR-ing these counts active days without a distinct aggregation."""
    return F.call_function("shiftleft", F.lit(1).cast("long"), day_of_month)


def measure_sums(measures: Sequence[str], facts_level: bool) -> list[Column]:
    """Sums of the optional measures; `cost_missing` counts sales without a cost, so that a
    margin is only reported when every sale's cost is known."""
    sums = []
    if "quantity" in measures:
        sums.append(F.sum("quantity").alias("quantity"))
    if "margin" in measures:
        sums.append(F.sum("cost_cents").alias("cost_cents"))
        missing = (
            F.count(F.when(~F.col("is_refund") & F.col("cost_cents").isNull(), 1))
            if facts_level
            else F.sum("cost_missing")
        )
        sums.append(missing.alias("cost_missing"))
    return sums


def month_aggregates(
    facts: DataFrame,
    groups: Sequence[str] = (),
    measures: Sequence[str] = (),
    by_week: bool = False,
) -> DataFrame:
    """Customer (x group) x month: net revenue and refunds in cents (sales are their sum),
    orders (sales), first/last timestamp, a bitmap of active days and the measures.

    `by_week` splits each month by ISO week (`week_key`), so that weeks, which cross month
    ends, roll up from the same rows as every other grain.
    """
    sale = ~F.col("is_refund")
    keys = ["customer_id", *groups, "month_idx", *(["week_key"] if by_week else [])]
    return facts.groupBy(*keys).agg(
        F.sum("amount_cents").alias("revenue_cents"),
        F.coalesce(-F.sum(F.when(~sale, F.col("amount_cents"))), F.lit(0)).alias("refund_cents"),
        F.count(F.when(sale, 1)).alias("orders"),
        F.min("transaction_ts").alias("first_transaction_ts"),
        F.max("transaction_ts").alias("last_transaction_ts"),
        F.bit_or(day_bit(F.col("day"))).alias("day_mask"),
        *measure_sums(measures, facts_level=True),
    )


def roll_up(
    months: DataFrame,
    grains: Sequence[Grain],
    key_runs: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    groups: Sequence[str] = (),
    measures: Sequence[str] = (),
) -> DataFrame:
    """Customer x period for every grain, from month aggregates only (no second scan).

    `key_runs`, when given, keeps per grain only the periods whose key lies in one of the
    ranges (the periods a range or incremental run writes). Active days add up because the
    months of a period do not overlap; each month row is an active month. Rows are keyed by
    integers (`grain_idx`, `period_key`); `with_period_labels` names them. With
    `customer_first_ts` on the month rows (`with_customer_first`), each period row keeps it,
    for tenure.
    """
    exploded = _periods_of_months(months, grains, key_runs)
    totals = exploded.groupBy("customer_id", *groups, "grain_idx", "period_key").agg(
        F.sum("revenue_cents").alias("revenue_cents"),
        F.sum("refund_cents").alias("refund_cents"),
        F.sum("orders").alias("orders"),
        F.min("first_transaction_ts").alias("first_transaction_ts"),
        F.max("last_transaction_ts").alias("last_transaction_ts"),
        F.sum(F.bit_count("day_mask")).cast("int").alias("active_days"),
        active_months(grains, "week_key" in months.columns),
        *measure_sums(measures, facts_level=False),
        *(
            [F.min("customer_first_ts").alias("customer_first_ts")]
            if "customer_first_ts" in months.columns
            else []
        ),
    )
    return totals.select(
        "customer_id",
        *groups,
        "grain_idx",
        "period_key",
        "revenue_cents",
        "refund_cents",
        "orders",
        "first_transaction_ts",
        "last_transaction_ts",
        "active_days",
        "active_months",
        *[MEASURE_COLUMNS[m] for m in measures],
        *(["cost_missing"] if "margin" in measures else []),
        *(["customer_first_ts"] if "customer_first_ts" in months.columns else []),
    )


def _periods_of_months(
    months: DataFrame,
    grains: Sequence[Grain],
    key_runs: Mapping[str, Sequence[tuple[int, int]]] | None,
) -> DataFrame:
    """Each month row once per period it rolls up into (`grain_idx`, `period_key`), only
    for the periods in `key_runs` when given."""
    exploded = months.select("*", F.inline(period_keys("month_idx", grains)))
    if key_runs is None:
        return exploded
    wanted = F.lit(False)
    for i, grain in enumerate(grains):
        for low, high in key_runs[grain.name]:
            wanted = wanted | ((F.col("grain_idx") == i) & F.col("period_key").between(low, high))
    return exploded.where(wanted)


# Optional metrics naming the dimension value that brought a customer the most revenue.
TOP_DIMENSIONS = {"top_channel": "channel", "top_category": "product_category"}


def top_values(
    unique: DataFrame,
    tops: Sequence[str],
    grains: Sequence[Grain],
    key_runs: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    groups: Sequence[str] = (),
) -> DataFrame:
    """Per customer (x group) and period, for each of `tops` (`TOP_DIMENSIONS`): the value
    with the most net revenue (ties: the first by name) and that revenue (`<top>_cents`).

    Rows without a value count for none. Net revenue per value is summed per month, then
    rolled up like every other metric; both dimensions go through one aggregation, stacked.
    """
    week = ["week_key"] if "week_key" in unique.columns and _has_week(grains) else []
    stacked = F.array(
        *[
            F.struct(F.lit(top).alias("top"), F.col(TOP_DIMENSIONS[top]).alias("value"))
            for top in tops
        ]
    )
    keys = ["customer_id", *groups]
    per_month = (
        unique.select(*keys, "month_idx", *week, "amount_cents", F.inline(stacked))
        .where(F.col("value").isNotNull())
        .groupBy(*keys, "month_idx", *week, "top", "value")
        .agg(F.sum("amount_cents").alias("cents"))
    )
    per_period = (
        _periods_of_months(per_month, grains, key_runs)
        .groupBy(*keys, "grain_idx", "period_key", "top", "value")
        .agg(F.sum("cents").alias("cents"))
    )
    # The smallest (-cents, value): most revenue, then the first name.
    rank = F.struct(-F.col("cents"), F.col("value"))
    picks = []
    for top in tops:
        mine = F.col("top") == F.lit(top)
        picks.append(F.min_by(F.col("value"), F.when(mine, rank)).alias(top))
        picks.append(F.max(F.when(mine, F.col("cents"))).alias(f"{top}_cents"))
    return per_period.groupBy(*keys, "grain_idx", "period_key").agg(*picks)


def _has_week(grains: Sequence[Grain]) -> bool:
    return any(grain.name == "week" for grain in grains)


def top_share(top: str) -> tuple[Column, Column]:
    """The top value (none unless it brought revenue) and its share of the customer's net
    revenue in the period (none unless that is positive)."""
    cents = F.col(f"{top}_cents")
    positive = (cents > 0) & (F.col("revenue_cents") > 0)
    value = F.when(cents > 0, F.col(top))
    share = F.when(positive, cents.cast("double") / F.col("revenue_cents").cast("double"))
    return value, share


def active_months(grains: Sequence[Grain], split_by_week: bool) -> Column:
    """Months of the period with a transaction: one per month row, unless the rows are
    split by week; then a bitmap of the months' offsets in the period."""
    if not split_by_week:
        return F.count(F.lit(1)).cast("int").alias("active_months")
    first: Column = F.lit(None).cast("int")
    key = F.col("period_key")
    for i, grain in enumerate(grains):
        first = F.when(F.col("grain_idx") == i, grain.first_month_col(key)).otherwise(first)
    bit = F.call_function("shiftleft", F.lit(1).cast("long"), F.col("month_idx") - first)
    return F.bit_count(F.bit_or(bit)).cast("int").alias("active_months")


def with_customer_first(months: DataFrame) -> DataFrame:
    """Each month row with its customer's first transaction in all the months read.

    A window by customer over the month rows: they are already partitioned by customer, so
    this sorts within partitions and shuffles nothing.
    """
    first = F.min("first_transaction_ts").over(Window.partitionBy("customer_id"))
    return months.withColumn("customer_first_ts", first)


def with_period_labels(frame: DataFrame, grains: Sequence[Grain]) -> DataFrame:
    """`period_grain` and `period` from the integer keys, row by row (string formatting:
    fine for small frames; the job labels through the broadcast cut points instead)."""
    return frame.withColumns(
        {
            "period_grain": grain_name(F.col("grain_idx"), grains),
            "period": period_label(F.col("grain_idx"), F.col("period_key"), grains),
        }
    )


def period_end_day(grain: Grain, key: int) -> int:
    """The period's last day as days since 1970-01-01: recency and tenure count to it,
    never to today, so a re-run gives the same numbers."""
    return (grain.last_day(key) - EPOCH).days


def days_before(end_day: Column, ts: Column, timezone: str) -> Column:
    """Whole days from the local day of `ts` to the period's last day (0: that same day)."""
    return (end_day - local_epoch_day(ts, timezone)).cast("int")


def average_order_cents(revenue_cents: Column, orders: Column) -> Column:
    """Revenue per order in cents, rounded half-up; null for a period without orders.

    Integer arithmetic on cents (|2c + n| fits a bigint for any decimal(18,2) amount):
    exact, and about five times cheaper than a decimal division per output row.
    """
    halves = F.abs(revenue_cents) * 2 + orders
    cents = F.signum(revenue_cents).cast("long") * F.call_function("div", halves, orders * 2)
    return F.when(orders > 0, cents)


def average_order_value(revenue_cents: Column, orders: Column) -> Column:
    """Revenue per order in decimal(18,2), rounded half-up to the cent (see
    `average_order_cents`)."""
    return to_money(average_order_cents(revenue_cents, orders))
