"""Global sensitivity analysis with SALib: Sobol indices and the Morris screen.

The experiment's sampled parameters form a SALib *problem*; :func:`design_points` draws the sample
(Sobol' sequence for ``method = "sobol"``, Morris trajectories for ``"morris"``), deterministically
from ``[design] seed``. After the sweep, :func:`run_metrics` turns each run's years into the
experiment's scalar ``[metrics]`` (averaged over seeds per design point) and :func:`analyze`
computes the indices with bootstrap confidence intervals.

Log-uniform parameters (``log = true``) are sampled uniformly in ln(value). SALib's Morris
elementary effects are output changes per unit of the *normalised* parameter range (so mu* and
sigma are in the metric's unit: the effect of moving a parameter across its whole range);
Sobol indices are shares of the output variance.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from model.experiment import Experiment

SOBOL_COLUMNS = ("metric", "parameter", "S1", "S1_conf", "ST", "ST_conf")
MORRIS_COLUMNS = ("metric", "parameter", "mu", "mu_star", "mu_star_conf", "sigma")


def problem(exp: Experiment) -> dict[str, Any]:
    """The SALib problem: names and bounds (ln of the bounds for log-uniform parameters)."""
    return {
        "num_vars": len(exp.parameters),
        "names": [p.name for p in exp.parameters],
        "bounds": [[math.log(b) for b in p.bounds] if p.log else list(p.bounds)
                   for p in exp.parameters],
    }


def sample(exp: Experiment) -> np.ndarray:
    """The raw SALib sample (one row per design point, in problem units)."""
    from SALib.sample import morris, sobol

    d = exp.design
    if d.method == "sobol":
        return sobol.sample(problem(exp), d.n, calc_second_order=d.second_order, seed=d.seed)
    if d.method == "morris":
        return morris.sample(problem(exp), d.trajectories, num_levels=d.levels, seed=d.seed)
    raise ValueError(f"not a sampling design: {d.method!r}")


def design_points(exp: Experiment) -> list[tuple[Any, ...]]:
    """The sample as parameter values: exp() of log-uniform columns, integers rounded."""
    x = sample(exp)
    cols = [np.exp(x[:, j]) if p.log else x[:, j] for j, p in enumerate(exp.parameters)]
    return [tuple(round(float(c[i])) if p.integer else float(c[i])
                  for p, c in zip(exp.parameters, cols)) for i in range(x.shape[0])]


def run_metrics(exp: Experiment, table: pd.DataFrame) -> pd.DataFrame:
    """The experiment's metrics of every design point, averaged over its seeds.

    Args:
        exp: The experiment.
        table: Its result table (columns ``point``, ``seed``, ``year`` and the outputs).

    Returns:
        One row per design point (index ``point``, sorted), one column per metric.
    """
    out = {}
    for name, m in exp.metrics.items():
        t = table
        if m.year is not None:
            t = t[t["year"] == m.year]
        elif m.years is not None:
            t = t[t["year"].between(*m.years)]
        agg = "sum" if m.stat == "value" else m.stat
        per_run = t.groupby(["point", "seed"], sort=True)[m.column].agg(agg)
        out[name] = per_run.groupby(level="point", sort=True).mean()
    return pd.DataFrame(out).sort_index()


def analyze(exp: Experiment, table: pd.DataFrame, n: int | None = None) -> pd.DataFrame:
    """Sensitivity indices of every metric with confidence intervals (``design.conf_level``).

    Args:
        exp: A Sobol or Morris experiment.
        table: Its complete result table (every design point present).
        n: Sobol only: use the first ``n`` base samples (a power of 2 <= ``design.n``), e.g. to
            check that the indices are stable.

    Returns:
        Sobol: one row per metric and parameter with S1, S1_conf, ST, ST_conf. Morris: mu,
        mu_star, mu_star_conf, sigma (metric units, per normalised parameter range).

    Raises:
        ValueError: Design points are missing or a metric is not finite.
    """
    from SALib.analyze import morris, sobol

    d, prob = exp.design, problem(exp)
    y_all = run_metrics(exp, table)
    x = sample(exp)
    if len(y_all) != x.shape[0] or (y_all.index.to_numpy() != np.arange(x.shape[0])).any():
        raise ValueError(f"{x.shape[0] - len(y_all)} design points have no result")
    rows = []
    for name in exp.metrics:
        y = y_all[name].to_numpy(dtype=np.float64)
        if d.method == "sobol":
            per = (2 * len(exp.parameters) + 2) if d.second_order else len(exp.parameters) + 2
            y = y[: (n or d.n) * per]
        if not np.isfinite(y).all():
            raise ValueError(f"metric {name!r} is not finite in every run")
        if d.method == "sobol":
            r = sobol.analyze(prob, y, calc_second_order=d.second_order,
                              num_resamples=d.resamples, conf_level=d.conf_level, seed=d.seed)
            cols = {"S1": r["S1"], "S1_conf": r["S1_conf"], "ST": r["ST"], "ST_conf": r["ST_conf"]}
        else:
            r = morris.analyze(prob, x, y, num_resamples=d.resamples, conf_level=d.conf_level,
                               num_levels=d.levels, seed=d.seed)
            cols = {k: np.asarray(r[k], dtype=np.float64)
                    for k in ("mu", "mu_star", "mu_star_conf", "sigma")}
        for j, p in enumerate(prob["names"]):
            rows.append({"metric": name, "parameter": p}
                        | {k: float(v[j]) for k, v in cols.items()})
    return pd.DataFrame(rows, columns=list(SOBOL_COLUMNS if d.method == "sobol"
                                             else MORRIS_COLUMNS))


def convergence(exp: Experiment, table: pd.DataFrame) -> pd.DataFrame:
    """Sobol indices from the first N/4, N/2 and all N base samples (column ``n``).

    Indices that barely move between N/2 and N are stable; the largest change is reported by
    the sweep summary.
    """
    parts = []
    for n in (exp.design.n // 4, exp.design.n // 2, exp.design.n):
        if n >= 4:
            parts.append(analyze(exp, table, n).assign(n=n))
    return pd.concat(parts, ignore_index=True)


def max_change(conv: pd.DataFrame) -> float:
    """The largest |change| of S1 or ST between the two largest N of :func:`convergence`."""
    ns = sorted(conv["n"].unique())
    if len(ns) < 2:
        return math.nan
    a = conv[conv["n"] == ns[-2]].set_index(["metric", "parameter"])[["S1", "ST"]]
    b = conv[conv["n"] == ns[-1]].set_index(["metric", "parameter"])[["S1", "ST"]]
    return float((a - b).abs().to_numpy().max())
