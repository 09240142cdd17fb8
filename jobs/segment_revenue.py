"""spark-submit / Databricks entry point: the arguments of `revseg run`.

spark-submit ... jobs/segment_revenue.py --config conf/cluster.yaml [--from 2024-03]
"""

import sys

from revseg.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
