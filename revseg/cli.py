"""The `revseg` command: parse arguments, get a session, call the pipeline, summarise.

`revseg run` segments customers; `revseg clv` fits and scores customer lifetime value;
`revseg report` draws the summary tables as an HTML page; `revseg generate` writes a
sample lake. Errors that revseg
understands end the command with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from revseg import __version__
from revseg.contract import ALL_TABLES, CUSTOMER_CURRENT_SEGMENT
from revseg.errors import ConcurrentWriteError, ConfigError, RevsegError
from revseg.io.paths import RedactingFilter, redact

logger = logging.getLogger("revseg")

DEFAULT_CONFIG = Path("conf/local.yaml")
DEFAULT_REPORT_DIR = "revseg-report"
EXIT_ERROR = 2
EXIT_UNEXPECTED = 1
# A concurrent write: safe to retry as is (sysexits' EX_TEMPFAIL), unlike a bad config.
EXIT_RETRY = 75


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revseg", description="Segment customers by revenue on Spark and Delta Lake."
    )
    parser.add_argument("--version", action="version", version=f"revseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="compute segments and write the Delta tables")
    run.add_argument(
        "--config",
        type=Path,
        help=f"YAML config file (default: {DEFAULT_CONFIG} if it exists, else built-in defaults)",
    )
    run.add_argument("--from", dest="first", metavar="YYYY-MM", help="first month to compute")
    run.add_argument("--to", dest="last", metavar="YYYY-MM", help="last month to compute")
    run.add_argument(
        "--incremental",
        action="store_true",
        help="recompute only the periods that contain source partitions (or FX rates) new or "
        "changed since the last run of every period; nothing changed: skipped",
    )
    _set_argument(run, "override a config key by its dotted path, value as YAML (repeatable)")
    run.add_argument(
        "--summary",
        choices=("text", "json"),
        default="text",
        help="the summary printed on stdout: text (default) or json, for an orchestrator",
    )
    run.add_argument(
        "--as-of",
        dest="as_of",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="rows after this day (in periods.timezone) are quarantined as after_as_of_date "
        "(default: today there)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging, tracebacks")

    clv = commands.add_parser(
        "clv",
        help="fit the CLV models, score every customer, write customer_clv, clv_models and "
        "clv_validation",
    )
    _config_arguments(clv)
    clv.add_argument(
        "--calibration-end",
        dest="calibration_end",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="last day of the calibration window, inside it (default: clv.calibration_end, "
        "else the last day with a purchase)",
    )
    clv.add_argument(
        "--holdout-end",
        dest="holdout_end",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="last day of the holdout after the calibration: predictions are compared with "
        "what happened until then (default: clv.holdout_end; none: no validation)",
    )

    runs = commands.add_parser("runs", help="list recent runs from the run log")
    _config_arguments(runs)
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")

    vacuum = commands.add_parser(
        "vacuum", help="delete files that no current table version uses (Delta VACUUM)"
    )
    _config_arguments(vacuum)
    vacuum.add_argument(
        "--retain-hours",
        type=float,
        default=None,
        help="keep files removed less than this many hours ago (default: each table's "
        "delta.deletedFileRetentionDuration, 7 days); less than that needs --force",
    )
    vacuum.add_argument(
        "--force",
        action="store_true",
        help="allow a retention below the table's own: deletes the files of any write still "
        "running and those readers of older versions need (only when nothing runs there)",
    )

    export = commands.add_parser(
        "export",
        help="write a table as plain files for tools that cannot read Delta "
        "(current: customer_current_segment)",
    )
    export.add_argument("table", choices=("current",), help="the table: current")
    _config_arguments(export)
    export.add_argument("--out", required=True, help="the directory to write")
    export.add_argument(
        "--format", default="parquet", choices=("csv", "parquet"), help="csv or parquet (default)"
    )
    export.add_argument("--grain", help="one grain only, e.g. month (default: every grain)")
    export.add_argument("--overwrite", action="store_true", help="replace what is at --out")

    report = commands.add_parser(
        "report",
        help="write an HTML report (tiers, concentration, migrations, CLV) from the summary tables",
    )
    _config_arguments(report)
    report.add_argument(
        "--out",
        default=DEFAULT_REPORT_DIR,
        help=f"the directory to write report.html into (default: {DEFAULT_REPORT_DIR})",
    )
    report.add_argument("--grain", help="the grain to draw (default: the first in periods.grains)")

    generate = commands.add_parser("generate", help="write a sample transaction lake")
    generate.add_argument("--output", required=True, help="where to write the lake")
    generate.add_argument("--rows", type=int, default=200_000)
    generate.add_argument(
        "--customers", type=int, default=None, help="distinct customers (default: rows / 20)"
    )
    generate.add_argument("--start", type=date.fromisoformat, default=date(2023, 1, 1))
    generate.add_argument("--end", type=date.fromisoformat, default=date(2024, 12, 31))
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument(
        "--format", default="parquet", choices=("parquet", "delta", "csv", "json")
    )
    generate.add_argument("--overwrite", action="store_true", help="replace an existing lake")
    generate.add_argument(
        "--plain",
        action="store_true",
        help="USD sales only: no other currencies, refunds or test orders (the benchmark's lake)",
    )
    generate.add_argument(
        "--fx-output",
        default=None,
        help="where to write the FX rates table (default: fx_rates beside --output)",
    )
    _set_argument(
        generate, "config overrides for the Spark session, e.g. spark.spark.driver.memory=4g"
    )
    generate.add_argument("--verbose", "-v", action="store_true")
    return parser


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=f"YAML config file (default: {DEFAULT_CONFIG})")
    _set_argument(parser, "override a config key, e.g. output.path=/data/out")
    parser.add_argument("--verbose", "-v", action="store_true")


def _set_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--set KEY=VALUE`, repeatable: config overrides by dotted key."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "generate":
            return _generate(args)
        if args.command == "clv":
            return _clv(args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "vacuum":
            return _vacuum(args)
        if args.command == "export":
            return _export(args)
        if args.command == "report":
            return _report(args)
    except ConcurrentWriteError as err:
        print(f"revseg: error: {redact(str(err))}", file=sys.stderr)
        return EXIT_RETRY
    except RevsegError as err:
        print(f"revseg: error: {redact(str(err))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("revseg: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # anything else: one line, the traceback only with --verbose
        logger.debug("unexpected error", exc_info=True)
        first_line = redact((str(err).strip().splitlines() or [""])[0])
        print(
            f"revseg: error: {type(err).__name__}: {first_line} "
            "(run with --verbose for the full traceback)",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED
    return EXIT_ERROR


def entry_point() -> None:
    """The `revseg` console script: exits with main's code, also when a platform (such as a
    Databricks wheel task) calls the entry point function instead of running the script."""
    sys.exit(main())


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # every logger's records, Spark's too
        handler.addFilter(RedactingFilter())
    logging.getLogger("py4j").setLevel(logging.WARNING)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    # pyspark logs every failed query as a JSON blob; revseg reports errors itself.
    logging.getLogger("DataFrameQueryContextLogger").setLevel(logging.CRITICAL)


def _load(args: argparse.Namespace) -> Any:
    from revseg.config import load_config

    path = getattr(args, "config", None)
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_config(path, args.overrides)


def _month(text: str | None, flag: str) -> Any:
    from revseg.periods import Month

    if text is None:
        return None
    try:
        return Month.parse(text)
    except ValueError as err:
        raise ConfigError(f"{flag}: {err}") from None


def _run(args: argparse.Namespace) -> int:
    from revseg.io.paths import check_local_inputs
    from revseg.pipeline import run_segmentation
    from revseg.session import get_session, will_build_local_session
    from revseg.summary import format_summary, summary_json

    config = _load(args)
    first, last = _month(args.first, "--from"), _month(args.last, "--to")
    if first and last and last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    if args.incremental and (first or last):
        raise ConfigError("--incremental finds the periods itself: leave out --from and --to")
    as_of = args.as_of or datetime.now(ZoneInfo(config.periods.timezone)).date()
    if will_build_local_session(config.spark):  # its paths are on this machine's disk
        check_local_inputs({"source": config.source, "revenue.fx_rates": config.revenue.fx_rates})
    spark = get_session(config.spark)
    result = run_segmentation(spark, config, first, last, as_of=as_of, incremental=args.incremental)
    levels = list(config.tiers.segment_names())
    if args.summary == "json":
        print(summary_json(result))
    else:
        print(format_summary(result, levels, config.revenue.reporting_currency))
    if config.clv.enabled:  # after the segments: a failed fit leaves them written
        from revseg.summary import format_clv_summary

        clv = _clv_runner()(spark, config, as_of=as_of)
        clv_levels = [level.name for level in config.tiers.levels]
        print(
            format_clv_summary(clv, clv_levels),
            file=sys.stderr if args.summary == "json" else None,
        )
    return 0


def _clv_runner() -> Any:
    """`run_clv`, or a clear error when the `clv` extra's packages are missing."""
    try:
        from revseg.clv_pipeline import run_clv
    except ImportError as err:
        raise ConfigError(
            f"revseg clv needs the packages of the clv extra ({err.name or err} is missing): "
            'pip install "revseg[clv]" (scipy, numpy, pandas, pyarrow)'
        ) from None
    return run_clv


def _clv(args: argparse.Namespace) -> int:
    from revseg.io.paths import check_local_inputs
    from revseg.session import get_session, will_build_local_session
    from revseg.summary import format_clv_summary

    config = _load(args)
    if will_build_local_session(config.spark):
        check_local_inputs({"source": config.source, "revenue.fx_rates": config.revenue.fx_rates})
    run_clv = _clv_runner()
    spark = get_session(config.spark)
    result = run_clv(spark, config, args.calibration_end, args.holdout_end)
    print(format_clv_summary(result, [level.name for level in config.tiers.levels]))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from revseg.io.runs import recent_runs
    from revseg.io.table_ref import Outputs
    from revseg.session import get_session
    from revseg.summary import format_runs

    config = _load(args)
    spark = get_session(config.spark)
    print(format_runs(recent_runs(spark, Outputs.of(config.output), args.limit)))
    return 0


def _vacuum(args: argparse.Namespace) -> int:
    from revseg.io.delta_tables import is_delta_table, vacuum_table
    from revseg.io.table_ref import Outputs
    from revseg.session import get_session

    config = _load(args)
    spark = get_session(config.spark)
    for name in ALL_TABLES:
        table = Outputs.of(config.output).table(name)
        if not is_delta_table(spark, table):
            continue
        removed = vacuum_table(spark, table, args.retain_hours, force=args.force)
        shown = "unused files deleted" if removed is None else f"{removed} unused file(s) deleted"
        print(f"{table}: {shown}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from revseg.io.export import export_current
    from revseg.io.table_ref import Outputs
    from revseg.session import get_session

    config = _load(args)
    spark = get_session(config.spark)
    outputs = Outputs.of(config.output)
    rows, version = export_current(
        spark, outputs, args.out, args.format, args.grain, args.overwrite
    )
    print(
        f"wrote {rows:,} rows of {outputs.table(CUSTOMER_CURRENT_SEGMENT)} "
        f"(Delta version {version}) to {args.out} as {args.format}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            'revseg report needs matplotlib (the report extra): pip install "revseg[report]"'
        ) from None
    from revseg.io.report_tables import report_data, write_report
    from revseg.io.table_ref import Outputs
    from revseg.session import get_session

    config = _load(args)
    grain = args.grain or config.periods.grains[0]
    if grain not in config.periods.grains:
        raise ConfigError(
            f"--grain {grain}: not one of the config's periods.grains "
            f"({', '.join(config.periods.grains)})"
        )
    spark = get_session(config.spark)
    data = report_data(
        spark, Outputs.of(config.output), grain, config.tiers.segment_names(), config.tiers.by
    )
    print(f"wrote the report to {write_report(data, args.out)}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from revseg.io.lake import write_lake
    from revseg.sample import SampleSpec, fx_rates, sample_transactions
    from revseg.session import get_session

    config = _load(args)
    try:
        spec = SampleSpec(
            rows=args.rows,
            customers=args.customers or max(1, args.rows // 20),
            start=args.start,
            end=args.end,
            seed=args.seed,
            plain=args.plain,
        )
    except ValueError as err:
        raise ConfigError(f"generate: {err}") from None
    spark = get_session(config.spark)
    write_lake(sample_transactions(spark, spec), args.output, args.format, overwrite=args.overwrite)
    print(
        f"wrote {spec.rows} {'sales' if spec.plain else 'sales (plus refunds)'} of "
        f"{spec.customers} customers ({spec.start} to {spec.end}, seed {spec.seed}) "
        f"to {args.output}"
    )
    if not spec.plain:
        fx_path = args.fx_output or str(Path(args.output).parent / "fx_rates")
        write_lake(fx_rates(spark, spec), fx_path, "parquet", None, overwrite=args.overwrite)
        print(f"wrote daily FX rates to USD for the sample's currencies to {fx_path}")
    return 0
