"""Figures: seaborn recipes that draw ``results/figures/`` from the experiments' results.

:func:`make_figures` reads each experiment's result table (``RESULTS/NAME/results.parquet``),
running the sweep first when it is missing, incomplete or of another design, and the baseline
scenario's run for the firm-level figures. Every figure is written as PNG and SVG with the table
it draws beside it as CSV. The same inputs give the same files: no timestamps in the images, fixed
SVG ids, rounded CSV numbers. Palettes are colour-blind safe (seaborn "colorblind", viridis).

Units: prices yuan/t CO2; quantities Mt CO2 (1e6 t); costs bn yuan (1e9 yuan).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import InputError
from model.scenario import SECTORS

SNAPSHOT = 2035
"""Year of the snapshot figures (CEA price heatmap, offsets, MAC against the price)."""
DPI = 150
_STYLE = {"svg.hashsalt": "cets", "svg.fonttype": "none", "font.size": 9,
          "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
          "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 11}


@dataclass(frozen=True)
class Recipe:
    """One figure: its file name, the experiment it needs (None = the baseline run), the drawer."""

    name: str
    experiment: str | None
    draw: Callable[..., tuple]


def make_figures(experiments: str | Path = "experiments", results: str | Path = "results/sweeps",
                 out: str | Path = "results/figures", *, engine: str = "auto",
                 workers: int | None = None, scheduler: str | None = None,
                 only: list[str] | None = None, rerun: bool = False,
                 progress: bool = True) -> list[Path]:
    """Draw every figure (or ``only`` these names) into ``out``.

    Args:
        experiments: Folder of the experiment TOML files (``NAME.toml``) and
            ``scenarios/baseline.toml``.
        results: Folder of the sweep results, one sub-folder per experiment.
        out: Figure folder (created).
        engine: Engine of the sweeps that must run (see :func:`model.sweep.sweep`).
        workers: Their worker processes (default: all cores).
        scheduler: A Dask scheduler address for them.
        only: Figure names to draw (default: all of :data:`RECIPES`).
        rerun: Sweep the experiments again even if their results are complete (e.g. after
            the model changed).
        progress: Show progress bars.

    Returns:
        The files written (PNG, SVG and CSV of each figure).

    Raises:
        InputError: An unknown figure name, a bad experiment file, or a sweep with failed runs.
    """
    import matplotlib

    from model.experiment import load_experiment

    experiments, results, out = Path(experiments), Path(results), Path(out)
    names = [r.name for r in RECIPES]
    for n in only or []:
        if n not in names:
            raise InputError(None, f"unknown figure {n!r}; expected one of {', '.join(names)}")
    recipes = [r for r in RECIPES if only is None or r.name in only]
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str | None, object] = {}
    for r in recipes:
        if r.experiment in data:
            continue
        if r.experiment is None:
            data[None] = _baseline(experiments / "scenarios" / "baseline.toml")
        elif r.experiment == FRICTIONS:
            data[FRICTIONS] = _friction_data(experiments / "scenarios" / "baseline.toml")
        else:
            exp = load_experiment(experiments / f"{r.experiment}.toml")
            data[r.experiment] = (exp, _results(exp, results / exp.name, engine, workers,
                                                scheduler, progress, rerun))
    written: list[Path] = []
    with matplotlib.rc_context(_STYLE):
        import seaborn as sns
        with sns.axes_style("whitegrid"):
            for r in recipes:
                fig, table = r.draw(data[r.experiment])
                written += _save(fig, table, out / r.name)
    return written


def _results(exp, folder: Path, engine: str, workers: int | None, scheduler: str | None,
             progress: bool, rerun: bool) -> pd.DataFrame:
    """The experiment's result table, sweeping what is missing."""
    from model.sweep import _read_json, code_hash, load_results, sweep

    manifest = _read_json(folder / "manifest.json")
    if manifest is not None and (rerun or manifest.get("design_sha256") != exp.design_hash()):
        why = "--rerun" if rerun else "the experiment changed"
        print(f"{exp.name}: {why}; sweeping again into {folder}", file=sys.stderr)
        shutil.rmtree(folder)
        manifest = None
    elif manifest is not None and manifest.get("code_sha256") != code_hash():
        print(f"{exp.name}: the results in {folder} come from other model code (code_sha256 in "
              "manifest.json); drawing them anyway; `cets figures --rerun` sweeps again",
              file=sys.stderr)
    if manifest is None or manifest.get("status") != "complete":
        s = sweep(exp, folder, engine=engine, workers=workers, scheduler=scheduler,
                  resume=manifest is not None, progress=progress)
        if progress:
            print(s.text(), file=sys.stderr)
        if s.failures or s.missing:
            raise InputError(folder, f"{len(s.failures)} runs failed and {s.missing} are missing;"
                             " see manifest.json")
    return load_results(folder)


def _baseline(path: Path) -> dict[str, pd.DataFrame]:
    """The baseline scenario's years, sectors and firms tables."""
    from model.model import CarbonMarket
    from model.results import firms_table, sectors_table, years_table
    from model.scenario import load_scenario

    m = CarbonMarket(load_scenario(path), agents=False)
    m.run()
    firms = firms_table(m)
    return {"years": years_table(m), "sectors": sectors_table(firms), "firms": firms}


def _save(fig, table: pd.DataFrame, stem: Path) -> list[Path]:
    """PNG + SVG (no dates) + CSV (6 significant digits) of one figure."""
    paths = [stem.with_suffix(s) for s in (".png", ".svg", ".csv")]
    fig.savefig(paths[0], dpi=DPI, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    table.to_csv(paths[2], index=False, float_format="%.6g", lineterminator="\n")
    return paths


def _figure(w: float, h: float, nrows: int = 1, ncols: int = 1, **kw):
    """A pyplot-free Figure (no global state, any backend) and a 2-d array of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def _pct(s: pd.Series) -> pd.Series:
    return (100 * s).round(6)


def _palette(n: int) -> list:
    import seaborn as sns
    return sns.color_palette("colorblind", n)


# ------------------------------------------------------------------------------ recipes
def cea_price_heatmap(data) -> tuple:
    """CEA price in SNAPSHOT by coverage set x benchmark decline, one panel per cap start."""
    import seaborn as sns

    exp, t = data
    year = _snapshot(t["year"])
    t = t[t["year"] == year]
    cap, dec = "absolute_caps", "allocation.benchmark_decline"
    table = (t.assign(decline_pct=_pct(t[dec])).groupby([cap, "coverage", "decline_pct"],
                                                        sort=False)["cea_price"].mean()
             .reset_index())
    caps = list(dict.fromkeys(t[cap]))
    covers = list(dict.fromkeys(t["coverage"]))
    vmax = float(np.nanquantile(table["cea_price"], 0.98)) or 1.0
    fig, axes = _figure(3.2 * len(caps) + 1.2, 3.2, 1, len(caps), sharey=True)
    for k, (ax, c) in enumerate(zip(axes[0], caps)):
        grid = table[table[cap] == c].pivot(index="coverage", columns="decline_pct",
                                            values="cea_price").reindex(covers)
        sns.heatmap(grid, ax=ax, cmap="viridis", vmin=0, vmax=vmax, annot=True, fmt=".0f",
                    annot_kws={"fontsize": 7}, cbar=k == len(caps) - 1,
                    cbar_kws={"label": f"CEA price {year} (yuan/t)"})
        ax.set_title(f"absolute caps: {c}")
        ax.set_xlabel("benchmark decline (%/yr)")
        ax.set_ylabel("coverage" if k == 0 else "")
        ax.set_yticks(np.arange(len(covers)) + 0.5, [_wrap(s) for s in covers], rotation=0)
        ax.tick_params(labelleft=k == 0)
    fig.suptitle(f"Allowance (CEA) price in {year} by coverage and stringency{_seeds(exp)}")
    return fig, table.rename(columns={"cea_price": f"cea_price_{year}_yuan_per_t"})


def emissions_vs_cap(data) -> tuple:
    """Verified emissions (solid) against the cap (allocation, dashed) by coverage set."""
    from matplotlib.ticker import MaxNLocator

    exp, t = data
    cap, dec = "absolute_caps", "allocation.benchmark_decline"
    caps = list(dict.fromkeys(t[cap]))
    first_cap = next((c for c in caps if "published" in c), caps[0])
    declines = sorted(t[dec].unique())
    shown = [d for d in declines if d in (declines[0], declines[len(declines) // 2], declines[-1])]
    t = t[(t[cap] == first_cap) & t[dec].isin(shown)]
    table = (t.groupby(["coverage", dec, "year"], sort=False)[["emissions", "allocation"]].mean()
             / 1e6).reset_index().rename(columns={dec: "benchmark_decline", "emissions":
                                                  "emissions_Mt", "allocation": "allocation_Mt"})
    covers = list(dict.fromkeys(t["coverage"]))
    colours = dict(zip(shown, _palette(len(shown))))
    fig, axes = _figure(10, 3.4, 1, len(covers))
    for ax, c in zip(axes[0], covers):
        for d in shown:
            s = table[(table["coverage"] == c) & (table["benchmark_decline"] == d)]
            ax.plot(s["year"], s["emissions_Mt"] / 1e3, color=colours[d], lw=1.8,
                    label=f"emissions, decline {100 * d:g} %/yr")
            ax.plot(s["year"], s["allocation_Mt"] / 1e3, color=colours[d], lw=1.2, ls="--",
                    label=f"cap (allocation), decline {100 * d:g} %/yr")
        ax.set_title(_wrap(c, 40))
        ax.set_xlabel("compliance year")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("Gt CO2 per year")
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle(f"Covered emissions against the cap by coverage set (absolute caps: "
                 f"{first_cap}){_seeds(exp)}")
    return fig, table


def abatement_by_sector(data) -> tuple:
    """Who abates and who buys: abatement and net CEA purchases by sector, baseline."""
    s = data["sectors"]
    table = pd.DataFrame({"year": s["year"], "sector": s["sector"],
                          "abatement_Mt": s["abatement"] / 1e6,
                          "net_cea_purchases_Mt": s["cea_bought"] / 1e6,
                          "ccer_used_Mt": s["ccer_used"] / 1e6,
                          "abatement_cost_bn_yuan": s["abatement_cost"] / 1e9})
    table = table[table["year"] >= _first_active(data["years"])]
    sectors = [x for x in SECTORS if x in set(table["sector"])]
    years = sorted(table["year"].unique())
    colours = dict(zip(sectors, _palette(len(sectors))))
    fig, axes = _figure(9, 3.6, 1, 2)
    for ax, col, title in ((axes[0][0], "abatement_Mt", "Abatement (Mt CO2)"),
                           (axes[0][1], "net_cea_purchases_Mt",
                            "Net CEA purchases incl. auctions (negative = sales)")):
        pos, neg = np.zeros(len(years)), np.zeros(len(years))
        for sec in sectors:
            v = table[table["sector"] == sec].set_index("year")[col].reindex(years, fill_value=0)
            v = v.to_numpy()
            base = np.where(v >= 0, pos, neg)
            ax.bar(years, v, bottom=base, color=colours[sec], label=sec, width=0.8)
            pos, neg = pos + np.maximum(v, 0), neg + np.minimum(v, 0)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("compliance year")
        ax.set_ylabel("Mt CO2")
    axes[0][0].legend(title="sector", loc="upper left", frameon=False)
    fig.suptitle("Who abates and who buys: the baseline scenario by sector")
    return fig, table


def mac_vs_price(data) -> tuple:
    """Each firm's marginal abatement cost at the equilibrium against the CEA price."""
    import seaborn as sns

    f, y = data["firms"], data["years"].set_index("year")
    year = _snapshot(y.index)
    price = float(y.loc[year, "cea_price"])
    f = f[f["year"] == year]
    table = pd.DataFrame({"firm_id": f["firm_id"], "sector": f["sector"],
                          "abatement_share_pct": _pct(f["abatement"] / f["unabated_emissions"]),
                          "marginal_cost_yuan_per_t": f["marginal_cost"],
                          "cea_price_yuan_per_t": price})
    fig, axes = _figure(7.5, 4.2)
    ax = axes[0][0]
    sns.scatterplot(table, x="abatement_share_pct", y="marginal_cost_yuan_per_t", hue="sector",
                    palette="colorblind", s=9, alpha=0.6, linewidth=0, ax=ax, rasterized=True)
    ax.axhline(price, color="black", lw=1.2, ls="--")
    ax.annotate(f"CEA price {price:.0f} yuan/t", (0.99, price), xycoords=("axes fraction", "data"),
                ha="right", va="bottom", fontsize=8)
    positive = bool((table["marginal_cost_yuan_per_t"] > 0).all())
    ax.set_yscale("log") if positive else ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel(f"abatement in {year} (% of the firm's unabated emissions)")
    ax.set_ylabel(f"marginal abatement cost (yuan/t, {'log' if positive else 'symlog'} scale)")
    ax.legend(title="sector", frameon=False, markerscale=2)
    ax.set_title(f"Firms' marginal cost at the equilibrium against the price, {year} (baseline)")
    return fig, table


def offset_limit(data) -> tuple:
    """CEA and CCER prices, offsets used and cost against the offset limit, by CCER supply."""
    import seaborn as sns

    exp, t = data
    lim, scale = "offsets.limit", "offsets.supply_scale"
    year = _snapshot(t["year"])
    snap = t[t["year"] == year].groupby([scale, lim])[["cea_price", "ccer_price"]].mean()
    tot = t.groupby([scale, lim, "seed"])[["ccer_used", "resource_cost"]].sum() \
        .groupby(level=[0, 1]).mean()
    first, last = int(t["year"].min()), int(t["year"].max())
    table = snap.join(tot).reset_index()
    table = pd.DataFrame({"supply_scale": table[scale], "limit_pct": _pct(table[lim]),
                          f"cea_price_{year}": table["cea_price"],
                          f"ccer_price_{year}": table["ccer_price"],
                          f"ccer_used_{first}_{last}_Mt": table["ccer_used"] / 1e6,
                          f"resource_cost_{first}_{last}_bn_yuan": table["resource_cost"] / 1e9})
    table["supply"] = [f"x {s:g}" for s in table["supply_scale"]]
    fig, axes = _figure(8.5, 6.2, 2, 2, sharex=True)
    cols = [(f"cea_price_{year}", f"CEA price {year} (yuan/t)"),
            (f"ccer_price_{year}", f"CCER price {year} (yuan/t)"),
            (f"ccer_used_{first}_{last}_Mt", f"CCERs used {first}-{last} (Mt)"),
            (f"resource_cost_{first}_{last}_bn_yuan",
             f"resource cost of compliance {first}-{last} (bn yuan)")]
    for ax, (col, label) in zip(axes.flat, cols):
        sns.lineplot(table, x="limit_pct", y=col, hue="supply", palette="colorblind",
                     marker="o", markersize=4, ax=ax, legend=ax is axes[0][0])
        ax.set_ylabel(label)
        ax.set_xlabel("offset limit (% of verified emissions)")
        if "cost" not in col:
            ax.set_ylim(bottom=0)
    axes[0][0].legend(title="CCER supply scale", frameon=False)
    fig.suptitle(f"The CCER offset limit: prices, offsets used and cost, by CCER supply"
                 f"{_seeds(exp)}")
    return fig, table.drop(columns="supply")


def gain_from_trade(data) -> tuple:
    """Resource cost of compliance with and without trading across stringencies, and the gain."""
    exp, t = data
    dec, reg = "allocation.benchmark_decline", "market.trading"
    first, last = int(t["year"].min()), int(t["year"].max())
    per_run = t.groupby([reg, dec, "seed"])[["resource_cost", "gain_from_trade"]].sum()
    mean = per_run.groupby(level=[0, 1]).mean().reset_index()
    cost = mean.pivot(index=dec, columns=reg, values="resource_cost") / 1e9
    static = mean[mean[reg] == "trading"].set_index(dec)["gain_from_trade"] / 1e9
    table = pd.DataFrame({"decline_pct": _pct(pd.Series(cost.index, index=cost.index)),
                          "cost_trading_bn_yuan": cost["trading"],
                          "cost_no_trading_bn_yuan": cost["no trading"],
                          "gain_separate_runs_bn_yuan": cost["no trading"] - cost["trading"],
                          "gain_same_year_bn_yuan": static}).reset_index(drop=True)
    c = _palette(3)
    fig, axes = _figure(9, 3.6, 1, 2)
    ax, x, w = axes[0][0], np.arange(len(table)), 0.38
    ax.bar(x - w / 2, table["cost_trading_bn_yuan"], w, color=c[0], label="with trading")
    ax.bar(x + w / 2, table["cost_no_trading_bn_yuan"], w, color=c[1],
           label="without trading (each firm alone)")
    ax.set_yscale("log")
    top = float(np.nanmax(table[["cost_trading_bn_yuan", "cost_no_trading_bn_yuan"]].to_numpy()))
    if np.isfinite(top) and top > 0:
        ax.set_ylim(top=top * 30)  # room for the legend above the bars
    ax.set_ylabel(f"resource cost {first}-{last} (bn yuan, log scale)")
    ax.set_title("Cost of compliance with and without trading")
    ax.legend(frameon=False, loc="upper left", ncol=2)
    ax2 = axes[0][1]
    ax2.plot(x, table["gain_separate_runs_bn_yuan"], "o-", color=c[2],
             label="no-trading run minus trading run")
    ax2.plot(x, table["gain_same_year_bn_yuan"], "s--", color=c[0],
             label="each year at the trading run's holdings")
    ax2.axhline(0, color="0.3", lw=0.8)
    ax2.set_ylabel(f"gain from trade {first}-{last} (bn yuan)")
    ax2.set_ylim(bottom=min(0.0, float(np.nanmin(table[["gain_separate_runs_bn_yuan",
                                                        "gain_same_year_bn_yuan"]].to_numpy()))))
    ax2.set_title("Gain from trade")
    ax2.legend(frameon=False, loc="upper left")
    for a in (ax, ax2):
        a.set_xticks(x, [f"{v:g}" for v in table["decline_pct"]])
        a.set_xlabel("benchmark decline (%/yr)")
    fig.suptitle(f"Gain from trade across stringencies{_seeds(exp)}; resource cost = abatement + "
                 "CCER production + penalties")
    return fig, table


FRICTIONS = "frictions"
"""Pseudo-experiment of the frictions figure: one year of the baseline market, cleared many ways."""


def _friction_data(path: Path) -> pd.DataFrame:
    """The baseline's SNAPSHOT-year market (no bank) cleared with increasing frictions."""
    from model.frictions import friction_costs
    from model.market import Bounds
    from model.model import CarbonMarket
    from model.scenario import load_scenario

    sc = load_scenario(path).replace(start_year=SNAPSHOT, end_year=SNAPSHOT,
                                     investment={"enabled": False})
    m = CarbonMarket(sc, agents=False, record_firms=False)
    x = m._inputs(SNAPSHOT)
    mkt = x.market
    bounds = Bounds(floor=sc.prices.floor, ceiling=sc.prices.ceiling, penalty=1000.0)
    return friction_costs(x.curves, x.emissions[mkt], x.free[mkt], x.offsets,
                          sc.offsets.limit, bounds, np.random.default_rng(sc.seed),
                          taus=[0, 5, 10, 20, 40, 60], shares=[0, 0.1, 0.2, 0.3, 0.4, 0.5],
                          auctioned=x.auctioned)


def frictions(t: pd.DataFrame) -> tuple:
    """How frictions move one year's outcome away from the least-cost benchmark."""
    c = _palette(3)
    fig, axes = _figure(9, 3.6, 1, 2)
    tau = t[t["friction"] == "transaction_cost"]
    ax = axes[0][0]
    ax.plot(tau["transaction_cost"], 100 * (tau["cost_ratio"] - 1), "o-", color=c[0],
            label="cost above least cost")
    ax.set_xlabel("transaction cost per tonne traded (yuan/t)")
    ax.set_ylabel("cost above the least-cost market (%)")
    ax.set_title("Transaction costs (every firm trades)")
    ax3 = ax.twinx()
    ax3.plot(tau["transaction_cost"], tau["trade_volume"] / 1e6, "s--", color=c[2],
             label="allowances traded")
    ax3.set_ylabel("allowances traded (Mt)")
    ax3.grid(False)
    lines = ax.get_legend_handles_labels(), ax3.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], frameon=False,
              loc="center right")
    ax2 = axes[0][1]
    for k, (name, label) in enumerate((("own_surplus", "only sell their own surplus"),
                                       ("no_trade", "never trade"))):
        part = t[t["friction"] == name]
        ax2.plot(100 * part["restricted_share"], 100 * (part["cost_ratio"] - 1), "o-",
                 color=c[k], label=f"share of firms that {label}")
    ax2.set_xlabel("restricted firms (% of covered firms)")
    ax2.set_ylabel("cost above the least-cost market (%)")
    ax2.set_title("Restricted participation")
    ax2.legend(frameon=False, loc="upper left")
    fig.suptitle(f"Frictions against the least-cost benchmark (baseline market, {SNAPSHOT})\n"
                 "cost = abatement + CCER production + transaction costs + penalties")
    table = t[["friction", "transaction_cost", "restricted_share", "cea_price", "ccer_price",
               "total_cost", "trade_volume", "cost_ratio", "price_ratio"]]
    return fig, table.reset_index(drop=True)


def sobol_indices(data) -> tuple:
    """First-order and total Sobol indices with confidence intervals, one panel per metric."""
    from model import sensitivity

    exp, t = data
    table = sensitivity.analyze(exp, t)
    metrics = list(exp.metrics)
    nc = 2 if len(metrics) > 1 else 1
    nr = -(-len(metrics) // nc)
    fig, axes = _figure(9.5, 1.2 + 0.26 * len(exp.parameters) * nr, nr, nc, sharey=True)
    c = _palette(2)
    names = [p.name for p in exp.parameters]
    y = np.arange(len(names))
    for ax, m in zip(axes.flat, metrics):
        s = table[table["metric"] == m].set_index("parameter").reindex(names)
        ax.barh(y - 0.2, s["S1"], 0.4, xerr=s["S1_conf"], color=c[0], label="first order S1",
                error_kw={"lw": 0.8, "capsize": 2})
        ax.barh(y + 0.2, s["ST"], 0.4, xerr=s["ST_conf"], color=c[1], label="total ST",
                error_kw={"lw": 0.8, "capsize": 2})
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_title(_metric_label(m))
        ax.set_xlabel("Sobol index (share of the output variance)")
        ax.set_xlim(-0.05, 1.05)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=2, frameon=False)
    conf = round(100 * exp.design.conf_level)
    change = sensitivity.max_change(sensitivity.convergence(exp, t))
    fig.suptitle(f"Sobol sensitivity indices ({conf} % confidence intervals; N = {exp.design.n}, "
                 f"{len(t['run'].unique()):,} runs; largest change of an index from N/2 to N: "
                 f"{change:.2f})")
    return fig, table


def morris_screen(data) -> tuple:
    """Morris screen: mu* (overall effect) against sigma (interactions, non-linearity)."""
    from model import sensitivity

    exp, t = data
    table = sensitivity.analyze(exp, t)
    metrics = list(exp.metrics)
    nc = 2 if len(metrics) > 1 else 1
    nr = -(-len(metrics) // nc)
    fig, axes = _figure(9.5, 3.6 * nr, nr, nc)
    names = [p.name for p in exp.parameters]
    colours = dict(zip(names, _palette(len(names))))
    markers = "osD^vP*Xhp<>"
    for ax, m in zip(axes.flat, metrics):
        s = table[table["metric"] == m]
        k, unit = _metric_unit(m)
        for i, (_, r) in enumerate(s.iterrows()):
            ax.errorbar(k * r["mu_star"], k * r["sigma"], xerr=k * r["mu_star_conf"],
                        fmt=markers[i % 12], color=colours[r["parameter"]], ms=5, lw=0.8,
                        label=r["parameter"])
        ax.set_title(_metric_label(m))
        ax.set_xlabel(f"mu*: mean |elementary effect| ({unit})")
        ax.set_ylabel(f"sigma ({unit})")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside right center", frameon=False, title="parameter")
    fig.suptitle(f"Morris screen: effect of moving a parameter across its range "
                 f"({exp.design.trajectories} trajectories, {len(t['run'].unique())} runs)")
    return fig, table


def _metric_unit(m: str) -> tuple[float, str]:
    """Display factor and unit of a metric from its name (model units: yuan/t, t, yuan)."""
    if "price" in m:
        return 1.0, "yuan/t"
    if "cost" in m:
        return 1e-9, "bn yuan"
    if "emissions" in m or "abatement" in m or "ccer_used" in m:
        return 1e-9, "Gt CO2"
    return 1.0, "model units"


def _metric_label(m: str) -> str:
    """'cea_price_2030' -> 'CEA price 2030 (yuan/t)'."""
    words = {"cea": "CEA", "ccer": "CCER"}
    parts = m.split("_")
    years = [p for p in parts if p.isdigit()]
    text = " ".join(words.get(p, p) for p in parts if not p.isdigit())
    return f"{text[:1].upper()}{text[1:]} {'-'.join(years)} ({_metric_unit(m)[1]})"


def _snapshot(years) -> int:
    """SNAPSHOT if simulated, else the last simulated year."""
    return SNAPSHOT if (np.asarray(years) == SNAPSHOT).any() else int(np.max(years))


def _seeds(exp) -> str:
    """' (mean of 2 seeds)' or ''."""
    return f" (mean of {len(exp.seeds)} seeds)" if len(exp.seeds) > 1 else ""


def _first_active(years: pd.DataFrame) -> int:
    """First year with a positive price or abatement (the bars start there)."""
    active = years[(years["cea_price"] > 0) | (years["abatement"] > 0)]
    return int(active["year"].min()) if len(active) else int(years["year"].min())


def _wrap(s: str, width: int = 18) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(str(s), width))


RECIPES: tuple[Recipe, ...] = (
    Recipe("cea_price_heatmap", "coverage_x_stringency", cea_price_heatmap),
    Recipe("emissions_vs_cap", "coverage_x_stringency", emissions_vs_cap),
    Recipe("abatement_by_sector", None, abatement_by_sector),
    Recipe("mac_vs_price", None, mac_vs_price),
    Recipe("offset_limit", "offset_limit", offset_limit),
    Recipe("gain_from_trade", "trading_gains", gain_from_trade),
    Recipe("frictions", "frictions", frictions),
    Recipe("sobol_indices", "sobol", sobol_indices),
    Recipe("morris_screen", "morris", morris_screen),
)
"""Every figure of ``results/figures/``, in drawing order."""
