"""A Delta table named by its path or by its catalog name, as Delta's SQL addresses it.

Every Delta operation revseg makes goes through Delta's SQL (`DESCRIBE HISTORY`, `CREATE
TABLE IF NOT EXISTS`, `VACUUM`) or a DataFrame write, because those work the same in a
classic session and through Spark Connect (Databricks serverless, shared access mode),
where delta-spark's Python `DeltaTable` needs a server plugin. A table is one of:

- a path (`delta.`/lake/out/customer_segments``), for any storage Spark can write,
- a catalog name of one to three parts (`main.revseg.customer_segments`), for Unity
  Catalog or the session's metastore. Each part is checked and quoted here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from revseg.io.paths import join, qualify
from revseg.names import name_parts

if TYPE_CHECKING:  # the run's result names its tables without importing Spark
    from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

    from revseg.config import OutputConfig


def quoted_name(parts: list[str]) -> str:
    return ".".join(f"`{part}`" for part in parts)


@dataclass(frozen=True)
class TableRef:
    """One Delta table: `path` (a location) or `name` (a catalog name), exactly one."""

    path: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.name is None):
            raise ValueError("a table has a path or a name, exactly one")

    @classmethod
    def at(cls, path: str) -> TableRef:
        return cls(path=qualify(path))

    @classmethod
    def named(cls, name: str, key: str = "table") -> TableRef:
        return cls(name=".".join(name_parts(name, key)))

    @property
    def sql(self) -> str:
        """The table in Delta's SQL: delta.`path` or the quoted name."""
        if self.path is not None:
            return "delta.`" + self.path.replace("`", "``") + "`"
        return quoted_name((self.name or "").split("."))

    def __str__(self) -> str:
        return self.path or self.name or ""

    def read(self, spark: SparkSession, version: int | None = None) -> DataFrame:
        """The table, at `version` if given."""
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if self.path is not None:
            return reader.load(self.path)
        return reader.table(self.sql)

    def save(self, writer: DataFrameWriter) -> None:
        """Run a Delta write into this table (a path write, or one into the named table)."""
        if self.path is not None:
            writer.save(self.path)
        else:
            writer.saveAsTable(self.sql)


@dataclass(frozen=True)
class Outputs:
    """Where revseg's output tables are: under a directory (`output.path`), or in a catalog
    schema (`output.catalog` + `output.schema`: `main.revseg`, or a schema alone)."""

    path: str | None = None
    schema: str | None = None

    @classmethod
    def of(cls, output: OutputConfig) -> Outputs:
        """The config's output location (validated by the config: a path or a schema)."""
        if output.schema is not None:
            return cls(schema=output.location)
        return cls(path=qualify(output.path or "."))

    def table(self, name: str) -> TableRef:
        if self.schema is not None:
            return TableRef(name=f"{self.schema}.{name}")
        return TableRef(path=join(self.path or ".", name))

    def __str__(self) -> str:
        return self.schema if self.schema is not None else qualify(self.path or ".")
