# Databricks notebook source
# MAGIC %md
# MAGIC # revseg quick start
# MAGIC
# MAGIC Segment customers by revenue from a notebook: build a config, segment a DataFrame of
# MAGIC transactions (nothing is written), look at the tiers, then, if you want the tables,
# MAGIC run the whole job into a Unity Catalog schema.
# MAGIC
# MAGIC Attach the notebook to serverless compute or a cluster, and install revseg's wheel
# MAGIC first (the plain wheel: it uses the runtime's Spark and Delta).

# COMMAND ----------

# MAGIC %pip install revseg

# COMMAND ----------

# MAGIC %md
# MAGIC ## Where the data is
# MAGIC `TRANSACTIONS_TABLE` names your transaction table (`catalog.schema.table`); left as
# MAGIC `None`, the notebook generates a sample of 20,000 sales in five currencies.
# MAGIC `OUTPUT_SCHEMA` (`catalog.schema`) is where the last cell writes the tables; `None`
# MAGIC writes nothing.

# COMMAND ----------

TRANSACTIONS_TABLE = None  # e.g. "main.sales.transactions"
OUTPUT_SCHEMA = None  # e.g. "main.revseg"

# COMMAND ----------

from datetime import date

from pyspark.sql import SparkSession

import revseg
from revseg.sample import SampleSpec, fx_rates, sample_transactions

spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
overrides = {"periods.grains": ["month", "quarter", "year"]}
if TRANSACTIONS_TABLE is None:
    spec = SampleSpec(rows=20_000, customers=1_000, start=date(2024, 1, 1), end=date(2024, 12, 31))
    transactions = sample_transactions(spark, spec)
    # The sample's amounts are in five currencies: its rates to USD, as a temporary view.
    fx_rates(spark, spec).createOrReplaceTempView("revseg_sample_fx_rates")
    overrides["revenue.fx_rates.table"] = "revseg_sample_fx_rates"
else:
    transactions = spark.read.table(TRANSACTIONS_TABLE)
config = revseg.load_config(overrides=overrides)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Segment, write nothing
# MAGIC `revseg.segment` counts money by the same rules as a run (currencies, refunds,
# MAGIC duplicates, quarantine reasons) and returns DataFrames with the tables' schemas.

# COMMAND ----------

result = revseg.segment(transactions, config)
print(result.counts)

# COMMAND ----------

boundaries = result.tier_boundaries
boundaries.where("period_grain = 'quarter'").orderBy("period", "min_revenue").show()

# COMMAND ----------

top = result.customer_segments.where("segment = 'platinum' AND period_grain = 'year'")
top.orderBy("revenue", ascending=False).select("customer_id", "period", "revenue").show(10)

# COMMAND ----------

result.quarantined_transactions.groupBy("reason").count().show()

# COMMAND ----------

# MAGIC %md
# MAGIC ## The whole job, into tables
# MAGIC `revseg.run` does what `revseg run` does: reads `source.table`, writes the four
# MAGIC tables into `OUTPUT_SCHEMA`, logs the run, and returns its result.

# COMMAND ----------

if OUTPUT_SCHEMA is not None and TRANSACTIONS_TABLE is not None:
    catalog, schema = OUTPUT_SCHEMA.split(".")
    job_config = revseg.load_config(
        overrides={
            "source.table": TRANSACTIONS_TABLE,
            "source.format": "delta",
            "output.catalog": catalog,
            "output.schema": schema,
        }
    )
    run = revseg.run(job_config, spark=spark)
    print(run.status, run.periods, run.table_versions)
