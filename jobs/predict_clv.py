"""spark-submit / Databricks entry point: the arguments of `revseg clv`.

spark-submit ... jobs/predict_clv.py --config conf/cluster.yaml [--calibration-end 2024-06-30]
"""

import sys

from revseg.cli import main

if __name__ == "__main__":
    sys.exit(main(["clv", *sys.argv[1:]]))
