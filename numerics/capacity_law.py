"""Which law the capacity follows: c d^2, c d^2 / ln d or c d^alpha (the talk's "Capacity: Intuition").

The talk bounds Var[gamma_{z,y}] by |{f(z') = y}| / d + |{f(z') != y}| / d^2 and concludes that an
injective map stores N ~ d^2 associations; a max over N competitors of Gaussian noise of variance
N / d^2 adds a log factor (N ln N ~ d^2, i.e. N ~ d^2 / ln d to leading order). The fits are
weighted least squares of y = ln C on x = ln d with the standard error of ln C per d:

    d^p:      y = a + p x                (1 parameter; p = 2 injective, 1 mod2: the talk's law)
    d^p/ln d: y = a + p x - ln x         (1 parameter)
    power:    y = a + alpha x            (2 parameters)
    d^p/(ln d)^beta: y = a + p x - beta ln x   (2 parameters: how much of a log factor)

Compared by chi^2 with the stated errors, AIC = chi^2 + 2k, and AIC with a fitted scale
(n ln(chi^2 / n) + 2 (k + 1), for when the errors understate the scatter). Local slopes between
consecutive d, with their standard errors, beside the slope d^2 / ln d predicts there.
"""

from __future__ import annotations

import math

import numpy as np

SINGLE_SEED_FLOOR = 0.005   # se of ln C with one memory seed: at least the search's default resolution
LAWS = ("d^p", "d^p/ln d", "power", "d^p/(ln d)^beta")   # p = the talk's exponent: 2 (injective), 1 (mod2)


def log_capacity_se(row: dict) -> float:
    """Standard error of ln C at one d: from the memory seeds (se / mean) with >= 2 seeds, else from
    the capacity interval ((ln upper - ln lower) / (2 * 1.96), at least SINGLE_SEED_FLOOR: one
    draw's interval holds the query sampling, not the spread between memories); at least 1e-4."""
    if row.get("se") is not None:
        return max(row["se"] / row["mean"], 1e-4)
    return max((math.log(max(row["upper"], 1)) - math.log(max(row["lower"], 1))) / (2 * 1.96), SINGLE_SEED_FLOOR)


def fit_law(law: str, d, C, se, p: float = 2.0) -> dict:
    """Weighted least-squares fit of one law to (d, C) with errors `se` of ln C (p: the fixed exponent)."""
    x, y = np.log(np.asarray(d, float)), np.log(np.asarray(C, float))
    w = 1.0 / np.asarray(se, float) ** 2
    if law in ("power", "d^p/(ln d)^beta"):
        power = law == "power"
        A = np.stack([np.ones_like(x), x if power else -np.log(x)], axis=1)
        target = y if power else y - p * x
        cov = np.linalg.inv(A.T @ (w[:, None] * A))
        beta = cov @ A.T @ (w * target)
        resid = target - A @ beta
        k, exponent = 2, float(beta[1]) if power else p
    else:
        offset = p * x - (np.log(x) if law == "d^p/ln d" else 0)
        a = float(np.sum(w * (y - offset)) / np.sum(w))
        resid, k, exponent, cov, beta = y - offset - a, 1, p, np.array([[1 / np.sum(w)]]), np.array([a])
    n = len(x)
    chi2 = float(np.sum(w * resid ** 2))
    dof = max(n - k, 1)
    scale = max(1.0, chi2 / dof)                       # inflate the parameter errors when misfit
    out = {"law": law, "n": n, "k": k, "chi2": chi2, "chi2_per_dof": chi2 / dof, "aic": chi2 + 2 * k,
           "aic_scaled": n * math.log(max(chi2, 1e-300) / n) + 2 * (k + 1), "c": float(math.exp(beta[0])),
           "exponent": exponent}
    if law == "power":
        se_alpha = math.sqrt(cov[1, 1] * scale)
        out.update(exponent_se=se_alpha, exponent_ci=(exponent - 1.96 * se_alpha, exponent + 1.96 * se_alpha))
    if law == "d^p/(ln d)^beta":
        se_b = math.sqrt(cov[1, 1] * scale)
        out.update(log_power=float(beta[1]), log_power_se=se_b,
                   log_power_ci=(float(beta[1]) - 1.96 * se_b, float(beta[1]) + 1.96 * se_b))
    return out


def compare_laws(rows: list[dict], dmin: int = 0, p: float = 2.0) -> dict:
    """Fit the three laws to rows (`capacity_grid` output of one map, capacity >= 2, d >= dmin);
    'best' = the lowest AIC (with the stated errors) and 'best_scaled' (with a fitted scale)."""
    rows = [r for r in rows if r["d"] >= dmin and r["mean"] >= 2 and not r["saturated"]]
    if len(rows) < 3:
        return {"laws": {}, "best": None, "best_scaled": None, "dims": [r["d"] for r in rows]}
    d = [r["d"] for r in rows]
    C = [r["mean"] for r in rows]
    se = [log_capacity_se(r) for r in rows]
    fits = {law.replace("^p", f"^{p:g}", 1): fit_law(law, d, C, se, p) for law in LAWS}
    best = min(fits, key=lambda k: fits[k]["aic"])
    best_scaled = min(fits, key=lambda k: fits[k]["aic_scaled"])
    return {"laws": fits, "best": best, "best_scaled": best_scaled, "dims": d}


def local_slopes(rows: list[dict]) -> list[dict]:
    """Between consecutive d: slope of ln C vs ln d with its standard error, and the slope of
    d^2 / ln d over the same interval (2 - ln(ln d1 / ln d0) / ln(d1 / d0))."""
    out = []
    for r0, r1 in zip(rows, rows[1:]):
        if r0["mean"] < 2 or r1["mean"] < 2:
            out.append({"d": r1["d"], "slope": None, "se": None, "d2_over_ln_d": None})
            continue
        dx = math.log(r1["d"] / r0["d"])
        slope = math.log(r1["mean"] / r0["mean"]) / dx
        se = math.hypot(log_capacity_se(r0), log_capacity_se(r1)) / dx
        out.append({"d": r1["d"], "slope": slope, "se": se,
                    "d2_over_ln_d": 2 - math.log(math.log(r1["d"]) / math.log(r0["d"])) / dx})
    return out
