"""The three models' likelihoods and closed forms, vectorised over summary rows (numpy and
scipy's special functions; no Spark here).

Notation of Fader, Hardie & Lee (2005) and Fader & Hardie (2005, 2013): a customer has `x`
repeat purchase occasions, the last at `t_x` after the first, and is observed until `T`
(all in the time unit); `m` is the mean value of its repeat occasions.

- BG/NBD: purchases Poisson(lambda) while alive, lambda ~ Gamma(r, alpha); after each
  purchase the customer drops out with probability p ~ Beta(a, b).
- Pareto/NBD: the same purchase process; the lifetime is Exponential(mu), mu ~ Gamma(s, beta).
- Gamma-Gamma: each occasion's value ~ Gamma(p, nu), nu ~ Gamma(q, gamma), independent of
  the purchase process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaln, gammaln, hyp2f1

Array = NDArray[np.float64]

BGNBD = "bgnbd"
PARETO_NBD = "pareto_nbd"
GAMMA_GAMMA = "gamma_gamma"
PURCHASE_MODELS = (BGNBD, PARETO_NBD)


def _arrays(*values: ArrayLike) -> tuple[Array, ...]:
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


# --- BG/NBD --------------------------------------------------------------------------------


def bgnbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> Array:
    """Each row's log-likelihood (FHL 2005, eq. 6)."""
    x, t_x, T = _arrays(x, t_x, T)
    base = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    stays = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    drops = np.where(
        repeat,
        np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(base + np.logaddexp(stays, drops), dtype=np.float64)


def bgnbd_p_alive(
    r: float, alpha: float, a: float, b: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> Array:
    """P(alive at T | x, t_x, T); 1 for a customer without repeat purchases."""
    x, t_x, T = _arrays(x, t_x, T)
    repeat = x > 0
    log_odds = (
        np.log(a)
        - np.log(np.where(repeat, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    return np.where(repeat, 1.0 / (1.0 + np.exp(log_odds)), 1.0)


def bgnbd_expected_purchases(
    r: float,
    alpha: float,
    a: float,
    b: float,
    t: ArrayLike,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
) -> Array:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10)."""
    t, x, t_x, T = _arrays(t, x, t_x, T)
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1) * (1 - _bgnbd_ratio_hyp2f1(r, a, b, x, z))
    repeat = x > 0
    odds = np.where(
        repeat,
        a
        / np.where(repeat, b + x - 1, 1.0)
        * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x))),
        0.0,
    )
    return np.asarray(head / (1 + odds), dtype=np.float64)


def bgnbd_unconditional_purchases(
    r: float, alpha: float, a: float, b: float, t: ArrayLike
) -> Array:
    """E[X(t)]: purchases in the first t after a customer's first (FHL 2005, eq. 9)."""
    (t,) = _arrays(t)
    z = t / (alpha + t)
    ratio_hyp = _bgnbd_ratio_hyp2f1(r, a, b, np.zeros_like(z), z)
    return np.asarray((a + b - 1) / (a - 1) * (1 - ratio_hyp), dtype=np.float64)


def _bgnbd_ratio_hyp2f1(r: float, a: float, b: float, x: Array, z: Array) -> Array:
    """(1 - z)^(r + x) * 2F1(r + x, b + x; a + b + x - 1; z), by Euler's transformation:
    (1 - z)^(a - 1) * 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z). The direct form
    multiplies an underflow by an overflow for heavy buyers over long horizons (NaN); this
    one is finite there, and the same to 1e-12 elsewhere."""
    return np.asarray(
        np.power(1 - z, a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z), dtype=np.float64
    )


# --- Pareto/NBD ----------------------------------------------------------------------------


def _pareto_log_a0_parts(
    r: float, alpha: float, s: float, beta: float, x: Array, t_x: Array, T: Array
) -> tuple[Array, Array]:
    """log of the two terms whose difference is A0 (Fader & Hardie 2005 note, eq. 22-23),
    with the larger of alpha and beta as the hypergeometric function's base."""
    rsx = r + s + x
    first: Array | float
    if alpha >= beta:
        first, base = s + 1, alpha
        shift = alpha - beta
    else:
        first, base = r + x, beta
        shift = beta - alpha
    upper = np.log(hyp2f1(rsx, first, rsx + 1, shift / (base + t_x))) - rsx * np.log(base + t_x)
    lower = np.log(hyp2f1(rsx, first, rsx + 1, shift / (base + T))) - rsx * np.log(base + T)
    return upper, lower


def _pareto_log_terms(
    r: float, alpha: float, s: float, beta: float, x: Array, t_x: Array, T: Array
) -> tuple[Array, Array]:
    """log of the 'alive at T' term and of the 'died in (t_x, T]' term of the likelihood,
    without the common factor Gamma(r+x) alpha^r beta^s / Gamma(r)."""
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    upper, lower = _pareto_log_a0_parts(r, alpha, s, beta, x, t_x, T)
    gap = np.minimum(lower - upper, 0.0)  # A0 >= 0: t_x <= T
    with np.errstate(divide="ignore"):
        a0 = upper + np.log(-np.expm1(gap))
    died = np.log(s) - np.log(r + s + x) + a0
    return alive, died


def pareto_nbd_log_likelihood(
    r: float, alpha: float, s: float, beta: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> Array:
    """Each row's log-likelihood (Fader & Hardie 2005 note, eq. 22)."""
    x, t_x, T = _arrays(x, t_x, T)
    alive, died = _pareto_log_terms(r, alpha, s, beta, x, t_x, T)
    base = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return np.asarray(base + np.logaddexp(alive, died), dtype=np.float64)


def pareto_nbd_p_alive(
    r: float, alpha: float, s: float, beta: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> Array:
    """P(alive at T | x, t_x, T) (Fader & Hardie 2005 note, eq. 18)."""
    x, t_x, T = _arrays(x, t_x, T)
    alive, died = _pareto_log_terms(r, alpha, s, beta, x, t_x, T)
    return np.asarray(1.0 / (1.0 + np.exp(died - alive)), dtype=np.float64)


def _one_minus_power_over(exponent: float, ratio: Array) -> Array:
    """(1 - ratio**exponent) / exponent, also as exponent -> 0 (where it is -log(ratio))."""
    log_ratio = np.log(ratio)
    if abs(exponent) < 1e-10:
        return np.asarray(-log_ratio, dtype=np.float64)
    return np.asarray(-np.expm1(exponent * log_ratio) / exponent, dtype=np.float64)


def pareto_nbd_expected_purchases(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    t: ArrayLike,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
) -> Array:
    """E[purchases in (T, T + t] | x, t_x, T] (Fader & Hardie 2005 note, eq. 21)."""
    t, x, t_x, T = _arrays(t, x, t_x, T)
    alive = pareto_nbd_p_alive(r, alpha, s, beta, x, t_x, T)
    rate = (r + x) * (beta + T) / (alpha + T)
    return np.asarray(
        rate * _one_minus_power_over(s - 1, (beta + T) / (beta + T + t)) * alive,
        dtype=np.float64,
    )


def pareto_nbd_unconditional_purchases(
    r: float, alpha: float, s: float, beta: float, t: ArrayLike
) -> Array:
    """E[X(t)]: purchases in the first t after a customer's first (Schmittlein et al. 1987)."""
    (t,) = _arrays(t)
    return np.asarray(
        r * beta / alpha * _one_minus_power_over(s - 1, beta / (beta + t)), dtype=np.float64
    )


# --- Gamma-Gamma ---------------------------------------------------------------------------


def gamma_gamma_log_likelihood(
    p: float, q: float, gamma: float, x: ArrayLike, m: ArrayLike
) -> Array:
    """Each row's log-density of its mean repeat value m over x occasions (FHL 2005 RFM/CLV,
    eq. 5): the density of the mean, so its Jacobian terms are included."""
    x, m = _arrays(x, m)
    px = p * x
    return np.asarray(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * m),
        dtype=np.float64,
    )


def gamma_gamma_expected_spend(
    p: float, q: float, gamma: float, x: ArrayLike, m: ArrayLike
) -> Array:
    """E[value of an occasion | x, m]: the population mean p*gamma/(q-1) moved toward the
    customer's own mean as x grows. Rows with x = 0 (or no usable mean) get the population
    mean."""
    x, m = _arrays(x, m)
    own = (x > 0) & np.isfinite(m) & (m > 0)
    xs, ms = np.where(own, x, 0.0), np.where(own, m, 0.0)
    return np.asarray(p * (gamma + xs * ms) / (p * xs + q - 1), dtype=np.float64)


# --- what the fit needs to know of each model ----------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A model's parameter names and its per-row log-likelihood over the summary columns."""

    name: str
    parameters: tuple[str, ...]
    log_likelihood: Callable[..., Array]
    columns: tuple[str, ...]

    def row_log_likelihood(self, values: Array, data: Mapping[str, Array]) -> Array:
        return self.log_likelihood(*values, *(data[c] for c in self.columns))


MODELS: dict[str, ModelSpec] = {
    BGNBD: ModelSpec(BGNBD, ("r", "alpha", "a", "b"), bgnbd_log_likelihood, ("x", "t_x", "T")),
    PARETO_NBD: ModelSpec(
        PARETO_NBD, ("r", "alpha", "s", "beta"), pareto_nbd_log_likelihood, ("x", "t_x", "T")
    ),
    GAMMA_GAMMA: ModelSpec(
        GAMMA_GAMMA, ("p", "q", "gamma"), gamma_gamma_log_likelihood, ("x", "m")
    ),
}


def _purchase_parameters(
    model: str, parameters: Mapping[str, float]
) -> tuple[float, float, float, float]:
    first, second, third, fourth = (parameters[name] for name in MODELS[model].parameters)
    return first, second, third, fourth


def expected_purchases(
    model: str, parameters: Mapping[str, float], t: ArrayLike, x: Array, t_x: Array, T: Array
) -> Array:
    """E[purchases in (T, T + t] | x, t_x, T] under the named purchase model."""
    values = _purchase_parameters(model, parameters)
    if model == BGNBD:
        return bgnbd_expected_purchases(*values, t, x, t_x, T)
    return pareto_nbd_expected_purchases(*values, t, x, t_x, T)


def p_alive(model: str, parameters: Mapping[str, float], x: Array, t_x: Array, T: Array) -> Array:
    """P(alive at T | x, t_x, T) under the named purchase model."""
    values = _purchase_parameters(model, parameters)
    if model == BGNBD:
        return bgnbd_p_alive(*values, x, t_x, T)
    return pareto_nbd_p_alive(*values, x, t_x, T)


def unconditional_purchases(model: str, parameters: Mapping[str, float], t: ArrayLike) -> Array:
    """E[X(t)] under the named purchase model."""
    values = _purchase_parameters(model, parameters)
    if model == BGNBD:
        return bgnbd_unconditional_purchases(*values, t)
    return pareto_nbd_unconditional_purchases(*values, t)
