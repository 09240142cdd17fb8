"""revseg: segment customers by revenue on Apache Spark and Delta Lake.

From a notebook or a script:

    import revseg
    config = revseg.load_config("conf/local.yaml", overrides={"periods.grains": ["month"]})
    result = revseg.segment(transactions, config)   # DataFrames back, nothing written
    run = revseg.run(config)                         # the whole job, as `revseg run`
    clv = revseg.predict_clv(config, calibration_end=date(2024, 6, 30))  # as `revseg clv`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from revseg.config import Config, load_config
from revseg.errors import ConfigError, RevsegError

__version__ = "0.3.0"

if TYPE_CHECKING:
    from revseg.api import Segmentation, predict_clv, run, segment

__all__ = [
    "Config",
    "ConfigError",
    "RevsegError",
    "Segmentation",
    "__version__",
    "load_config",
    "predict_clv",
    "run",
    "segment",
]


def __getattr__(name: str) -> Any:
    """`segment`, `run`, `predict_clv` and `Segmentation` import pyspark: only when first
    used, so that `import revseg` (and loading a config) works without it."""
    if name in ("segment", "run", "predict_clv", "Segmentation"):
        from revseg import api

        return getattr(api, name)
    raise AttributeError(f"module 'revseg' has no attribute {name!r}")
