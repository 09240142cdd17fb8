"""The notebook API: segment a DataFrame and get DataFrames back, or run the whole job.

`segment` is the computation of a run without its edges: no source read, no table, no run
log. It applies the same rules (currencies, refunds, de-duplication, quarantine reasons,
quality checks), so what it returns is what a run over the same rows would write.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from revseg import checks, contract
from revseg.columns import check_column_types, resolve_columns
from revseg.compute import computation
from revseg.config import Config
from revseg.errors import ConfigError
from revseg.io.inputs import read_rates
from revseg.migrations import migration_counts_of
from revseg.periods import Month, RollingGrain, make_grains
from revseg.pipeline import check_counts, check_metric_source, pass_options, run_segmentation
from revseg.result import RunCounts, RunResult
from revseg.segmentation import in_boundary_order
from revseg.session import get_session
from revseg.tiering import Tiering

if TYPE_CHECKING:  # the CLV needs the clv extra (scipy): imported when first called
    from revseg.clv_pipeline import ClvResult


@dataclass(frozen=True)
class Segmentation:
    """What `segment` computed: DataFrames with the schemas of the tables a run writes,
    and the counts a run logs.

    `customer_segments` and `quarantined_transactions` are lazy (each action computes
    them again: `.cache()` one you act on often); `tier_boundaries`, `segment_summary`,
    `concentration` and `tier_migrations` (the pairs of consecutive periods in the data)
    are already computed.
    `periods` holds the periods per grain, as a run would write them (rolling windows
    without full history in the data left out)."""

    customer_segments: DataFrame
    tier_boundaries: DataFrame
    quarantined_transactions: DataFrame
    counts: RunCounts
    periods: dict[str, tuple[str, ...]]
    segment_summary: DataFrame
    concentration: DataFrame
    tier_migrations: DataFrame


def segment(
    transactions: DataFrame,
    config: Config,
    spark: SparkSession | None = None,
    as_of: date | None = None,
) -> Segmentation:
    """Segment the customers of `transactions`, writing nothing.

    `transactions` follow the input contract (`transaction_id`, `customer_id`,
    `transaction_ts`, `amount`, `currency`, ...), or `config.source.columns` maps their
    names. The FX rates, if the config names them, are read from
    `revenue.fx_rates`; rows after `as_of` are quarantined as `after_as_of_date`.

    >>> import revseg
    >>> config = revseg.load_config(overrides={"periods.grains": ["month"]})
    >>> result = revseg.segment(spark.read.table("main.sales.transactions"), config)
    >>> result.tier_boundaries.show()
    >>> result.customer_segments.where("segment = 'platinum'").count()
    """
    spark = spark or transactions.sparkSession
    where = "the transactions DataFrame"
    columns = resolve_columns(transactions.columns, config.source.columns, where)
    check_column_types(transactions.schema, columns, where)
    fx = config.revenue.fx_rates
    rates = read_rates(spark, fx) if fx is not None else None
    grains = make_grains(config.periods.grains, config.periods.fiscal_year_start_month)
    options = pass_options(config, rates, as_of)
    run_id = f"segment-{uuid.uuid4().hex[:10]}"
    check_metric_source(config, columns)
    tiering = Tiering.of(config.tiers, timezone=config.periods.timezone)
    with computation(transactions, columns, options, grains, None, tiering) as computed:
        periods = checks.periods_to_write(None, computed.boundaries, config.periods.grains)
        counts, duplicated = computed.counts()
        check_counts(config, counts)
        windows = [g for g in grains if isinstance(g, RollingGrain)]
        span = checks.data_span((counts.first_month, counts.last_month), None, None)
        periods = checks.without_windows(periods, checks.incomplete_windows(windows, *span))
        kept = sorted({p for labels in periods.values() for p in labels})
        levels = config.tiers.segment_names()
        boundaries = [
            row
            for row in in_boundary_order(computed.boundaries, config.periods.grains, levels)
            if row["period"] in kept
        ]
        summaries = [
            row
            for row in in_boundary_order(computed.summaries, config.periods.grains, levels)
            if row["period"] in kept
        ]
        concentration = [row for row in computed.concentration if row["period"] in kept]
        written = {grain: set(labels) for grain, labels in periods.items() if labels}
        migrations, _ = migration_counts_of(
            spark, computed.migration_input(kept), grains, written, {}, config.tiers.by
        )
        excluded = config.quality.quarantine_excluded
        today = datetime.now(timezone.utc).date()
        quarantined = computed.quarantined(duplicated, excluded, run_id, today)
        segments = computed.segments.where(F.col("period").isin(kept))

    def frame(table: str, rows: Sequence[Mapping[str, Any]]) -> DataFrame:
        schema = contract.with_groups(contract.PERIOD_SUMMARY_SCHEMAS[table], config.tiers.by)
        return spark.createDataFrame(
            [tuple(row[f] for f in schema.fieldNames()) for row in rows], schema
        )

    return Segmentation(
        customer_segments=segments,
        tier_boundaries=frame(contract.TIER_BOUNDARIES, boundaries),
        quarantined_transactions=quarantined,
        counts=counts,
        periods=periods,
        segment_summary=frame(contract.SEGMENT_SUMMARY, summaries),
        concentration=frame(contract.CONCENTRATION, concentration),
        tier_migrations=frame(contract.TIER_MIGRATIONS, migrations),
    )


def run(
    config: Config,
    spark: SparkSession | None = None,
    from_month: str | None = None,
    to_month: str | None = None,
    incremental: bool = False,
    as_of: date | None = None,
) -> RunResult:
    """The whole job, as `revseg run` runs it: read the source, write the four tables,
    log the run; the run's result (its periods, counts, table versions).

    `from_month`/`to_month` (`"2024-01"`) replace only the periods of those months;
    `incremental` finds the periods whose input changed since the last full run. Rows after
    `as_of` (default: today in `periods.timezone`) are quarantined.

    >>> import revseg
    >>> config = revseg.load_config("conf/databricks.yaml")
    >>> result = revseg.run(config, from_month="2024-01", to_month="2024-03")
    >>> result.status, result.table_versions
    """
    first, last = _month(from_month, "from_month"), _month(to_month, "to_month")
    if first and last and last < first:
        raise ConfigError(f"to_month {last} is before from_month {first}")
    if incremental and (first or last):
        raise ConfigError("incremental finds the periods itself: leave out from_month/to_month")
    as_of = as_of or datetime.now(ZoneInfo(config.periods.timezone)).date()
    spark = spark or get_session(config.spark)
    return run_segmentation(spark, config, first, last, as_of=as_of, incremental=incremental)


def predict_clv(
    config: Config,
    spark: SparkSession | None = None,
    calibration_end: date | None = None,
    holdout_end: date | None = None,
) -> ClvResult:
    """Predictive CLV, as `revseg clv` runs it: fit the `clv.models` on the calibration
    window, score every customer, validate on the holdout (with `holdout_end`), and replace
    the calibration date in customer_clv, clv_validation and clv_models.

    >>> result = revseg.predict_clv(config, calibration_end=date(2024, 6, 30))
    >>> result.fit("bgnbd").parameters, result.table_versions
    """
    from revseg.clv_pipeline import run_clv

    spark = spark or get_session(config.spark)
    return run_clv(spark, config, calibration_end, holdout_end)


def _month(text: str | None, argument: str) -> Month | None:
    if text is None:
        return None
    try:
        return Month.parse(str(text))
    except ValueError as err:
        raise ConfigError(f"{argument}: {err}") from None
