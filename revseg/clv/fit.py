"""Weighted maximum likelihood over the collapsed summary rows, on the driver.

The rows are the distinct (x, t_x, T) of the customers (or (x, m) for Gamma-Gamma), each
with the number of customers it stands for: the log-likelihood of the customers is the
weighted sum over rows, so the fit's memory and time grow with the distinct rows, not with
the customers. Parameters are optimised on the log scale inside a box (bounded L-BFGS-B,
then Nelder-Mead from where it stopped if it did not converge); standard errors come from
the observed information, the Hessian of the negative log-likelihood at the optimum.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from revseg.clv.models import MODELS, Array
from revseg.errors import RevsegError

# The box for log parameters: every parameter within [1e-6, 1e6] (the models' parameters
# of real customer bases lie far inside; an optimum on the edge is not a fit).
LOG_BOUND = math.log(1e6)
_EDGE = LOG_BOUND - 1e-3


class FitError(RevsegError):
    """A model could not be fitted to the summary (named in the message)."""


@dataclass(frozen=True)
class Fit:
    """A fitted model: parameters and standard errors by name, the log-likelihood of all the
    customers it was fitted on, and how the optimiser got there."""

    model: str
    parameters: Mapping[str, float]
    std_errors: Mapping[str, float]
    log_likelihood: float
    customers: int
    converged: bool
    method: str
    iterations: int


def fit_model(
    model: str,
    data: Mapping[str, Array],
    weights: Array,
    start: Mapping[str, float] | None = None,
    max_iterations: int = 2000,
) -> Fit:
    """Maximise Σ weight * log-likelihood over the rows of `data` (columns the model names).

    Raises FitError naming the model when neither method converges to an inner optimum."""
    spec = MODELS[model]
    weights = np.asarray(weights, dtype=np.float64)
    total = float(weights.sum())
    if total <= 0:
        raise FitError(f"{model}: no customers to fit the model on")
    columns = {c: np.asarray(data[c], dtype=np.float64) for c in spec.columns}

    def negative_mean(log_values: Array) -> float:
        with np.errstate(all="ignore"):
            rows = spec.row_log_likelihood(np.exp(log_values), columns)
        value = -float(np.dot(weights, rows)) / total
        return value if math.isfinite(value) else 1e300

    initial = np.log([(start or {}).get(name, 1.0) for name in spec.parameters])
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(spec.parameters)
    attempts: list[tuple[str, OptimizeResult]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        found = minimize(
            negative_mean,
            initial,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iterations, "ftol": 1e-13, "gtol": 1e-9},
        )
        attempts.append(("L-BFGS-B", found))
        if not _inner_optimum(found):
            fallback = minimize(
                negative_mean,
                found.x if np.all(np.isfinite(found.x)) else initial,
                method="Nelder-Mead",
                bounds=bounds,
                options={"maxiter": max_iterations * 5, "xatol": 1e-10, "fatol": 1e-13},
            )
            attempts.append(("Nelder-Mead", fallback))
    method, best = next(((m, r) for m, r in reversed(attempts) if _inner_optimum(r)), (None, None))
    if best is None or method is None:
        _last_method, last = attempts[-1]
        at_edge = [name for name, v in zip(spec.parameters, last.x, strict=True) if abs(v) >= _EDGE]
        why = (
            f"parameter(s) {', '.join(at_edge)} ran to the edge of [1e-6, 1e6]"
            if at_edge
            else f"the optimiser stopped: {last.message}"
        )
        raise FitError(
            f"{model} did not converge ({'; '.join(m for m, _ in attempts)} tried): {why}. "
            "The summary may have too few customers or repeat purchases for this model; "
            "check clv.calibration_end, or leave the model out of clv.models."
        )
    values = np.exp(best.x)
    log_likelihood = -float(best.fun) * total
    errors = _std_errors(negative_mean, best.x, total)
    if not np.all(np.isfinite(errors)):
        flat = [n for n, e in zip(spec.parameters, errors, strict=True) if not math.isfinite(e)]
        raise FitError(
            f"{model} did not converge to an identified optimum ({method} stopped where the "
            f"likelihood is flat in {', '.join(flat)}: no standard error). The summary may "
            "have too few customers or repeat purchases for this model; check "
            "clv.calibration_end, or leave the model out of clv.models."
        )
    return Fit(
        model=model,
        parameters=dict(zip(spec.parameters, values.tolist(), strict=True)),
        std_errors=dict(zip(spec.parameters, (values * errors).tolist(), strict=True)),
        log_likelihood=log_likelihood,
        customers=round(total),
        converged=True,
        method=method,
        iterations=int(best.nit),
    )


def _inner_optimum(result: OptimizeResult) -> bool:
    return bool(
        result.success
        and math.isfinite(float(result.fun))
        and float(result.fun) < 1e299
        and np.all(np.abs(result.x) < _EDGE)
    )


def _std_errors(negative_mean: object, log_values: Array, total: float) -> Array:
    """Standard errors of the log parameters from the observed information (the Hessian of
    the negative log-likelihood, by central differences); NaN where it is not invertible.
    On the natural scale, se(theta) = theta * se(log theta) (the delta method)."""
    f = negative_mean
    assert callable(f)
    n = len(log_values)
    step = 1e-4
    hessian = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * step, np.eye(n)[j] * step
            value = (
                f(log_values + ei + ej)
                - f(log_values + ei - ej)
                - f(log_values - ei + ej)
                + f(log_values - ei - ej)
            ) / (4 * step * step)
            hessian[i, j] = hessian[j, i] = value * total
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return np.full(n, np.nan)
    variances = np.diag(covariance)
    return np.where(variances > 0, np.sqrt(np.abs(variances)), np.nan)
