"""The CLV models on the driver: the published CDNOW estimates, closed forms against a
direct per-customer computation, and the weighted likelihood against the per-customer sum.

`tests/fixtures/cdnow_sample.txt` is the CDNOW sample (2,357 customers, 1997-01 to
1998-06; columns: customer id, sample id, date, quantity, amount), as published by Fader
and Hardie and shipped in open-source CLV packages' datasets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from scipy.special import beta as beta_fn
from scipy.special import gamma as gamma_fn
from scipy.special import hyp2f1

from revseg.clv import models
from revseg.clv.fit import FitError, fit_model
from revseg.clv.simulate import purchase_times

CDNOW = Path(__file__).parent / "fixtures" / "cdnow_sample.txt"
CALIBRATION_END = date(1997, 9, 30)
PUBLISHED = {
    "bgnbd": ({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, -9582.4),
    "pareto_nbd": ({"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}, -9595.0),
    "gamma_gamma": ({"p": 6.25, "q": 3.74, "gamma": 15.44}, None),
}


def cdnow_customers() -> dict[str, tuple[int, float, float, float | None]]:
    """Per customer (x, t_x, T, mean repeat value) in weeks, by the conventions revseg
    documents: an occasion is a day with a purchase (a day's purchases merged)."""
    by_day: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for line in CDNOW.read_text().splitlines():
        customer, _, day, _, amount = line.split()
        when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        if when <= CALIBRATION_END:
            by_day[customer][when] += float(amount)
    found = {}
    for customer, days in by_day.items():
        ordered = sorted(days)
        x = len(ordered) - 1
        repeat = sum(days[d] for d in ordered[1:])
        found[customer] = (
            x,
            (ordered[-1] - ordered[0]).days / 7,
            (CALIBRATION_END - ordered[0]).days / 7,
            repeat / x if x else None,
        )
    return found


@pytest.fixture(scope="module")
def cdnow() -> dict[str, np.ndarray]:
    customers = cdnow_customers()
    rows: dict[tuple[int, float, float], int] = defaultdict(int)
    for x, t_x, T, _ in customers.values():
        rows[(x, t_x, T)] += 1
    keys = sorted(rows)
    return {
        "x": np.array([k[0] for k in keys], dtype=float),
        "t_x": np.array([k[1] for k in keys]),
        "T": np.array([k[2] for k in keys]),
        "weight": np.array([rows[k] for k in keys], dtype=float),
    }


def test_the_cdnow_sample_has_the_published_customers() -> None:
    customers = cdnow_customers()
    assert len(customers) == 2357
    repeaters = [c for c in customers.values() if c[0] > 0 and (c[3] or 0) > 0]
    assert len(repeaters) == 946


@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
def test_purchase_models_give_the_published_cdnow_estimates(
    model: str, cdnow: dict[str, np.ndarray]
) -> None:
    fit = fit_model(model, cdnow, cdnow["weight"])
    expected, log_likelihood = PUBLISHED[model]
    for name, value in expected.items():
        assert fit.parameters[name] == pytest.approx(value, rel=0.01), name
        assert 0 < fit.std_errors[name] < fit.parameters[name], name
    assert fit.log_likelihood == pytest.approx(log_likelihood, abs=0.5)
    assert fit.customers == 2357 and fit.converged


def test_gamma_gamma_gives_the_published_cdnow_estimates() -> None:
    repeaters = [c for c in cdnow_customers().values() if c[0] > 0 and (c[3] or 0) > 0]
    data = {"x": np.array([c[0] for c in repeaters]), "m": np.array([c[3] for c in repeaters])}
    fit = fit_model("gamma_gamma", data, np.ones(len(repeaters)))
    for name, value in PUBLISHED["gamma_gamma"][0].items():
        assert fit.parameters[name] == pytest.approx(value, rel=0.01), name
    assert fit.customers == 946


def test_the_papers_customer_expects_1_226_purchases_in_39_weeks() -> None:
    r, alpha, a, b = PUBLISHED["bgnbd"][0].values()
    expected = models.bgnbd_expected_purchases(r, alpha, a, b, 39, 2, 30.43, 38.86)
    assert float(expected) == pytest.approx(1.226, abs=0.0005)


# A few dozen customers: (x, t_x, T), t_x <= T, none and many repeat purchases.
HAND_PICKED = [
    (x, t_x, T)
    for x, T in [(0, 10.0), (1, 38.86), (2, 38.86), (5, 20.0), (14, 52.0), (40, 70.0)]
    for t_x in ([0.0] if x == 0 else [T * 0.05, T * 0.5, T * 0.9, T])
]


def direct_bgnbd(
    r: float, alpha: float, a: float, b: float, x: int, t_x: float, T: float, t: float
) -> tuple[float, float, float]:
    """Likelihood, P(alive) and E[Y(t)] of one customer, straight from FHL (2005) eq. 6,
    8 and 10, in plain arithmetic."""
    common = (beta_fn(a, b + x) / beta_fn(a, b)) * gamma_fn(r + x) * alpha**r / gamma_fn(r)
    stays = (alpha + T) ** -(r + x)
    drops = (a / (b + x - 1)) * (alpha + t_x) ** -(r + x) if x > 0 else 0.0
    likelihood = common * (stays + drops)
    odds = (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
    alive = 1 / (1 + odds)
    head = (a + b + x - 1) / (a - 1)
    tail = ((alpha + T) / (alpha + T + t)) ** (r + x)
    tail *= hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    return likelihood, alive, head * (1 - tail) / (1 + odds)


def direct_pareto(
    r: float, alpha: float, s: float, beta: float, x: int, t_x: float, T: float, t: float
) -> tuple[float, float, float]:
    """The same from Fader & Hardie's Pareto/NBD note (eq. 22, 18, 21)."""
    big, small = (alpha, beta) if alpha >= beta else (beta, alpha)
    second = s + 1 if alpha >= beta else r + x
    rsx = r + s + x

    def part(time: float) -> float:
        z = (big - small) / (big + time)
        return float(hyp2f1(rsx, second, rsx + 1, z)) / (big + time) ** rsx

    a0 = part(t_x) - part(T)
    common = gamma_fn(r + x) * alpha**r * beta**s / gamma_fn(r)
    alive_term = 1 / ((alpha + T) ** (r + x) * (beta + T) ** s)
    likelihood = common * (alive_term + s / rsx * a0)
    alive = 1 / (1 + s / rsx * (alpha + T) ** (r + x) * (beta + T) ** s * a0)
    expected = (
        (r + x)
        * (beta + T)
        / ((alpha + T) * (s - 1))
        * (1 - ((beta + T) / (beta + T + t)) ** (s - 1))
    ) * alive
    return likelihood, alive, expected


@pytest.mark.parametrize(
    ("model", "direct"), [("bgnbd", direct_bgnbd), ("pareto_nbd", direct_pareto)]
)
def test_closed_forms_agree_with_a_direct_computation(model: str, direct: object) -> None:
    assert callable(direct)
    parameters = PUBLISHED[model][0]
    values = list(parameters.values())
    x, t_x, T = (np.array(column, dtype=float) for column in zip(*HAND_PICKED, strict=True))
    log_likelihood = models.MODELS[model].log_likelihood(*values, x, t_x, T)
    alive = models.p_alive(model, parameters, x, t_x, T)
    expected = models.expected_purchases(model, parameters, 39.0, x, t_x, T)
    for i, (xi, txi, Ti) in enumerate(HAND_PICKED):
        likelihood, alive_i, expected_i = direct(*values, int(xi), txi, Ti, 39.0)
        assert log_likelihood[i] == pytest.approx(math.log(likelihood), rel=1e-9)
        assert alive[i] == pytest.approx(alive_i, rel=1e-9)
        assert expected[i] == pytest.approx(expected_i, rel=1e-9)
    assert len(HAND_PICKED) >= 20


@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
def test_the_weighted_likelihood_is_the_per_customer_sum(
    model: str, cdnow: dict[str, np.ndarray]
) -> None:
    """Collapsing customers to distinct rows with counts changes no likelihood."""
    values = list(PUBLISHED[model][0].values())
    spec = models.MODELS[model]
    weighted = float(
        np.dot(cdnow["weight"], spec.log_likelihood(*values, cdnow["x"], cdnow["t_x"], cdnow["T"]))
    )
    customers = list(cdnow_customers().values())
    x, t_x, T = (np.array([c[i] for c in customers], dtype=float) for i in range(3))
    assert weighted == pytest.approx(
        float(spec.log_likelihood(*values, x, t_x, T).sum()), rel=1e-12
    )
    assert len(cdnow["x"]) < len(customers) / 2  # the collapse saves rows


def test_a_model_that_cannot_converge_is_named() -> None:
    """Nobody ever bought again: BG/NBD's dropout parameters run off to the box's edge."""
    data = {"x": np.zeros(50), "t_x": np.zeros(50), "T": np.linspace(5, 50, 50)}
    with pytest.raises(FitError, match="bgnbd did not converge"):
        fit_model("bgnbd", data, np.ones(50))


@pytest.mark.parametrize(
    ("model", "truth"),
    [
        ("bgnbd", {"r": 0.5, "alpha": 10.0, "a": 0.8, "b": 2.5}),
        ("pareto_nbd", {"r": 0.55, "alpha": 10.5, "s": 0.6, "beta": 11.7}),
    ],
)
def test_the_fit_recovers_parameters_within_their_standard_errors(
    model: str, truth: dict[str, float]
) -> None:
    """100k customers drawn from the model in continuous time: every estimate within 3.5
    standard errors of the truth (the fitter and its standard errors, without the day-level
    summary's own bias; `test_clv_pipeline` checks the whole path)."""
    rng = np.random.default_rng(17)
    n = 100_000
    T = 52 + rng.uniform(0, 12, n)
    who, when = purchase_times(rng, model, truth, T)
    x = np.bincount(who, minlength=n).astype(float)
    t_x = np.zeros(n)
    np.maximum.at(t_x, who, when)
    rows, counts = np.unique(np.stack([x, t_x.round(2), T.round(2)], 1), axis=0, return_counts=True)
    fit = fit_model(model, {"x": rows[:, 0], "t_x": rows[:, 1], "T": rows[:, 2]}, counts)
    for name, value in truth.items():
        assert abs(fit.parameters[name] - value) < 3.5 * fit.std_errors[name], name
