"""revseg: customer revenue segmentation on Apache Spark and Delta Lake."""

import re
from pathlib import Path

from setuptools import find_packages, setup

# One version, revseg.__version__ (read as text: importing revseg here would need its deps).
INIT = (Path(__file__).parent / "revseg" / "__init__.py").read_text()
VERSION = re.search(r'^__version__ = "([^"]+)"', INIT, re.M).group(1)
LOCAL_SPARK = ["pyspark==4.1.1", "delta-spark==4.3.1"]
CLV = ["scipy==1.17.1", "numpy>=1.26,<3", "pandas>=2.2,<4", "pyarrow>=18"]
REPORT = ["matplotlib==3.11.2"]

setup(
    name="revseg",
    version=VERSION,
    description="Customer revenue segmentation on Apache Spark and Delta Lake",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["revseg", "revseg.*"]),
    package_data={"revseg": ["py.typed"]},
    python_requires=">=3.10",
    # What revseg needs on top of any Spark: a platform's own Spark (Databricks, a cluster's
    # install) is left alone. `revseg[local]` adds the Spark and Delta tested together.
    install_requires=["pyyaml>=6.0,<7"],
    extras_require={
        # Tested together: delta-spark 4.3.1 allows pyspark up to 4.1.1 and
        # resolves io.delta:delta-spark_4.1_2.13:4.3.1 on the JVM side.
        "local": LOCAL_SPARK,
        # A Spark Connect client (the tests run the job through a local Connect server).
        "connect": ["pyspark[connect]==4.1.1"],
        # Predictive CLV: the fits on the driver (scipy), the scores in pandas UDFs.
        "clv": CLV,
        # `revseg report`: the images of the HTML page
        "report": REPORT,
        "test": [
            *LOCAL_SPARK,
            *CLV,
            *REPORT,
            # the report's browser test drives Debian's chromium (no browser download)
            "playwright==1.65.2",
            "pyspark[connect]==4.1.1",
            "pytest>=8,<10",
            "pytest-xdist==3.8.0",
            "chispa==0.12.0",
            "hypothesis>=6.100,<7",
            "deltalake>=1.1,<2",
            "duckdb>=1.3,<3",
            "pyarrow>=18",
        ],
        # pymc-marketing: the peer the CLV benchmark compares with (never a dependency)
        "bench": [
            *LOCAL_SPARK,
            *CLV,
            "duckdb>=1.3,<3",
            "deltalake>=1.1,<2",
            "pyarrow>=18",
            "pymc-marketing==0.19.2",
        ],
        "docs": ["mkdocs==1.6.1", "mkdocs-material==9.8.1", "mkdocstrings-python==2.0.11"],
        "dev": ["ruff==0.17.6", "mypy==2.4.1"],
        # scripts/build_dist.sh: the one-file spark-submit artifact (revseg and its deps)
        "dist": ["pex==2.105.2"],
    },
    entry_points={"console_scripts": ["revseg=revseg.cli:entry_point"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Database",
    ],
)
