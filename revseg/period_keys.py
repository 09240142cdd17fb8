"""Stored tables name periods by label (`2024-03`, `2024-Q1`); the computations order and
pair them by key. This is the one small frame that maps the labels back to keys."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from revseg.periods import Grain, key_step, keys_of_labels

PERIOD_KEY_SCHEMA = StructType(
    [
        StructField("period_grain", StringType(), False),
        StructField("period", StringType(), False),
        StructField("grain_idx", IntegerType(), False),
        StructField("period_key", IntegerType(), False),
        StructField("step", IntegerType(), False),
    ]
)


def period_key_map(
    spark: SparkSession, grains: Sequence[Grain], labels: Mapping[str, Collection[str]]
) -> DataFrame:
    """(period_grain, period, grain_idx, period_key, step) of each label in `labels` (grain
    name -> labels): small, for a broadcast join on (period_grain, period). `grain_idx` is
    the grain's place in `grains`; a label that is no period of its grain is left out."""
    keyed = [
        (grain.name, label, idx, key, key_step(grain))
        for idx, grain in enumerate(grains)
        for label, key in keys_of_labels(grain, labels.get(grain.name, ())).items()
    ]
    return spark.createDataFrame(keyed, PERIOD_KEY_SCHEMA)
