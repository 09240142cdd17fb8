"""Tables derived from the committed customer_segments: tier_migrations (a run's pairs
reach past its own periods, into stored ones) and customer_current_segment (every stored
period of a grain). Two runs of disjoint periods both rewrite them, so they are not part
of a run's exclusive commits: each is written, and then it must be derived from the
latest segments; where another run committed segments in between (or Delta refused the
write as concurrent), it is derived again from the table as it is now.

Of two runs racing, the one whose segments commit came last derives after it: the tables
end up derived from segments that hold both runs' periods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import SparkSession

from revseg import contract
from revseg.errors import ConcurrentWriteError
from revseg.io.delta_history import commits_since, latest_version
from revseg.io.table_ref import Outputs

ATTEMPTS = 5


def write_derived(
    spark: SparkSession,
    outputs: Outputs,
    name: str,
    since: int,
    derive: Callable[[int], int | None],
    run_id: str,
    also: Sequence[str] = (),
) -> int | None:
    """Write table `name` by `derive(version)` (from customer_segments at `version`, starting
    at `since`; its commit's version, None: nothing to write) until no other writer has
    changed customer_segments after the version it was derived from, nor the tables named
    in `also` (read as they are) during the attempt."""
    version = since
    for _ in range(ATTEMPTS):
        before = {table: latest_version(spark, outputs.table(table)) for table in also}
        try:
            written: int | None = derive(version)
            refused = False
        except ConcurrentWriteError:
            written, refused = None, True
        moved = changed_since(spark, outputs, version, run_id) or any(
            changed_since(spark, outputs, seen, run_id, table) for table, seen in before.items()
        )
        if not refused and not moved:
            return written
        version = latest_version(spark, outputs.table(contract.CUSTOMER_SEGMENTS))
    raise ConcurrentWriteError(
        f"other runs kept committing {contract.CUSTOMER_SEGMENTS} while this run derived "
        f"{name} from it ({ATTEMPTS} attempts); the run's own periods are committed. Retry "
        "the run to bring the table in line."
    )


def changed_since(
    spark: SparkSession,
    outputs: Outputs,
    version: int,
    run_id: str | None = None,
    table: str = contract.CUSTOMER_SEGMENTS,
) -> bool:
    """Whether a writer other than run `run_id` (None: any) changed the table's rows (by
    default customer_segments') after `version`."""
    found = commits_since(spark, outputs.table(table), version)
    return any(commit.changes_rows and commit.writer != run_id for commit in found)
