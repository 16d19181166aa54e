"""The firm population: the calibrated synthetic national population, or the user's tables.

Calibration data live in ``model/data/*.csv`` (every row with a ``source`` and ``confidence``):

* ``sectors.csv`` — per sector the number of covered entities, emissions at a reference year,
  default growth rates and the log-normal size spread;
* ``firm_types.csv`` — firm types per sector with their shares of firms and emissions and mean
  emission intensity (t CO2 per output unit);
* ``benchmarks.csv`` — allocation benchmarks (t CO2 per output unit) by sector, type and year;
* ``technologies.csv`` — abatement options per sector (cost in yuan/t CO2, potential as a share
  of a firm's emissions) from which each firm's step MAC curve is drawn;
* ``ccer_projects.csv`` — CCER project types (t/yr, yuan/t, first and last usable vintage).
* ``demography.csv`` — per firm type: output growth spread, retirement and entry (used by
  :func:`model.demography.plan_demography`).

Everything is built as arrays (structure of arrays); random draws are vectorised and come from
the caller's ``numpy.random.Generator`` only, so a seed fixes the population.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.mac import MACCurves
from model.scenario import SECTORS

DATA_DIR = Path(__file__).parent / "data"
THRESHOLD = 26_000.0
"""Inclusion threshold, t CO2e/yr (MEE allocation plans; ICAP; reference §1)."""
MAX_POTENTIAL_SHARE = 0.95
"""Cap on the sum of a firm's option potentials as a share of its emissions (assumption: some
emissions always remain, e.g. CCS captures < 100 %)."""


# ---------------------------------------------------------------------------------- data tables
@functools.cache
def _data(name: str) -> pd.DataFrame:
    dtypes = {"default_entry_year": "Int64", "reference_year": "int64", "n_firms": "int64",
              "year": "int64", "first_year": "int64", "last_year": "int64",
              "retire_from": "int64", "retire_until": "int64", "entry_from": "int64",
              "entry_until": "int64"}
    df = pd.read_csv(DATA_DIR / name, encoding="utf-8")
    return df.astype({k: v for k, v in dtypes.items() if k in df.columns})


def sector_table() -> pd.DataFrame:
    """``model/data/sectors.csv``: per sector n_firms, emissions_t at reference_year, growth ..."""
    return _data("sectors.csv").copy()


def firm_type_table() -> pd.DataFrame:
    """``model/data/firm_types.csv``: firm types with shares, mean intensity (t CO2/unit), sigma."""
    return _data("firm_types.csv").copy()


def benchmark_table() -> pd.DataFrame:
    """``model/data/benchmarks.csv``: benchmark (t CO2/unit) by sector, firm_type and year."""
    return _data("benchmarks.csv").copy()


def technology_table() -> pd.DataFrame:
    """``model/data/technologies.csv``: options (cost yuan/t, potential share of emissions)."""
    return _data("technologies.csv").copy()


def demography_table() -> pd.DataFrame:
    """``model/data/demography.csv``: per firm type growth spread, retirement and entry."""
    return _data("demography.csv").copy()


def ccer_project_table() -> pd.DataFrame:
    """``model/data/ccer_projects.csv``: CCER project types (quantity t/yr, cost yuan/t, years)."""
    return _data("ccer_projects.csv").copy()


def default_firm_types() -> dict[str, str]:
    """Each sector's default firm type (its type with the largest share of emissions)."""
    t = firm_type_table().sort_values("share_of_emissions", ascending=False, kind="stable")
    return t.drop_duplicates("sector").set_index("sector")["firm_type"].to_dict()


# ---------------------------------------------------------------------------------- firms
@dataclass(frozen=True)
class TechOptions:
    """Each firm's technology options as drawn, in a compact layout of ``k`` slots per firm.

    Slot ``j`` of firm ``i`` holds option ``option[i, j]`` (a row of ``technologies.csv``), or
    nothing when ``option[i, j] == -1`` (padding: a sector with fewer than ``k`` options). A
    firm's options fill its first slots in table order; ``k`` is the largest number of options of
    one sector, so the per-year work is proportional to the options firms really have. The
    per-option attributes (``name`` ... ``initial_deployment``) have one entry per table row;
    :meth:`per_slot` maps them onto the slots and :meth:`dense` spreads a slot matrix out to one
    column per table row. ``MACCurves.from_options(tonnes(emissions), cost)`` is the firm's step
    MAC curve of all options (the ``Firms.mac`` of the synthetic population). The dynamics
    (learning, time decline, later options, lock-in) are in :mod:`model.investment`.

    Attributes:
        name: Option names, shape ``(n_options,)``.
        sector: Sector of each option.
        kind: ``"operational"`` (chosen each year) or ``"capital"`` (adopted for a lifetime).
        lifetime: Years a capital option abates once adopted; 0 for operational options.
        learning_rate: Cost fall per doubling of cumulative adoption, share.
        cost_decline: Cost fall per year after ``base_year``, share/yr.
        first_year: First year the option can be used.
        initial_deployment: Abatement by the option nationally in ``base_year``, t CO2/yr: the
            cumulative adoption that learning starts from.
        cost: Shape ``(n_firms, k)``, yuan/t in ``base_year`` (for capital options the levelised
            cost: annualised investment and running cost per tonne abated). Padding slots are
            ignored (the draw gives them the firm's cheapest cost, a zero-width curve point).
        potential: Shape ``(n_firms, k)``, share of the firm's unabated emissions; 0 in padding.
        base_year: The year the costs refer to.
        option: Shape ``(n_firms, k)``, int, the table row of each slot, -1 for padding. Default:
            slot ``j`` is row ``j`` for every firm (``cost`` has one column per table row).
    """

    name: np.ndarray
    sector: np.ndarray
    kind: np.ndarray
    lifetime: np.ndarray
    learning_rate: np.ndarray
    cost_decline: np.ndarray
    first_year: np.ndarray
    initial_deployment: np.ndarray
    cost: np.ndarray
    potential: np.ndarray
    base_year: int
    option: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.option is None:
            object.__setattr__(self, "option", np.broadcast_to(
                np.arange(self.cost.shape[1], dtype=np.int64), self.cost.shape))
        if not self.cost.shape == self.potential.shape == self.option.shape:
            raise ValueError("cost, potential and option must have the same shape")

    @property
    def n_firms(self) -> int:
        """Number of firms."""
        return int(self.cost.shape[0])

    @property
    def n_options(self) -> int:
        """Number of options (rows of the technology table)."""
        return int(self.name.size)

    @functools.cached_property
    def capital(self) -> np.ndarray:
        """Boolean mask of the capital options, shape ``(n_options,)`` (read-only, kept)."""
        mask = self.kind == "capital"
        mask.flags.writeable = False
        return mask

    @functools.cached_property
    def operational(self) -> np.ndarray:
        """Boolean mask of the operational options (``~capital``; read-only, kept)."""
        mask = ~self.capital
        mask.flags.writeable = False
        return mask

    @functools.cached_property
    def longest_lifetime(self) -> int:
        """The longest lifetime of an option, years (at least 1)."""
        return max(1, int(np.max(self.lifetime, initial=1)))

    def per_slot(self, values: np.ndarray, fill=0) -> np.ndarray:
        """Per-option ``values`` (shape ``(n_options,)``) at each slot, ``fill`` in padding."""
        values = np.asarray(values)
        return np.append(values, np.asarray(fill, dtype=values.dtype))[self.option]

    def dense(self, values: np.ndarray, fill=0) -> np.ndarray:
        """A slot matrix ``(n_firms, k)`` spread out to one column per option,
        ``(n_firms, n_options)``, with ``fill`` for the options a firm does not have."""
        values = np.asarray(values)
        out = np.full((self.n_firms, self.n_options), fill, dtype=values.dtype)
        firm, j = np.nonzero(self.option >= 0)
        out[firm, self.option[firm, j]] = values[firm, j]
        return out

    def tonnes(self, emissions: np.ndarray) -> np.ndarray:
        """Each slot's potential in t/yr for unabated ``emissions`` (t/yr per firm)."""
        return self.potential * np.asarray(emissions, dtype=np.float64)[:, None]

    def take(self, index: np.ndarray) -> TechOptions:
        """The options of a subset of firms (boolean mask or integer index, repeats allowed)."""
        idx = np.asarray(index)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":  # (integer indices: taken as they are)
            idx = np.arange(self.n_firms)[idx]
        return dataclasses.replace(self, cost=self.cost.take(idx, axis=0),
                                   potential=self.potential.take(idx, axis=0),
                                   option=self.option.take(idx, axis=0))

    def scaled(self, cost_factor: np.ndarray | float = 1.0,
               potential_factor: np.ndarray | float = 1.0) -> TechOptions:
        """Firm ``i``'s costs times ``cost_factor[i]``, potentials times ``potential_factor[i]``."""
        c = np.broadcast_to(np.asarray(cost_factor, dtype=np.float64), (self.n_firms,))
        p = np.broadcast_to(np.asarray(potential_factor, dtype=np.float64), (self.n_firms,))
        return dataclasses.replace(self, cost=self.cost * c[:, None],
                                   potential=self.potential * p[:, None])


@dataclass(frozen=True)
class Firms:
    """The firms of a run as parallel arrays (one entry per firm).

    Attributes:
        firm_id: Unique ids (object dtype), e.g. ``"power-00001"``.
        sector: Sector of each firm, one of ``SECTORS``.
        firm_type: Firm type, e.g. ``"coal_gt300"`` (see ``firm_types.csv``).
        emissions: Unabated emissions in ``base_year``, t CO2/yr.
        output: Physical output in ``base_year`` in the sector's unit (MWh, t product).
        allocation: User-given allocation, t (used as is every year), or None.
        mac: MAC curves of the firms for their ``base_year`` emissions (all options).
        base_year: The year the emissions and output refer to.
        options: Each firm's technology options (drawn curves only), or None.
        active_from: First year each firm operates, or None (always active).
        active_until: Last year each firm operates, or None (always active).
    """

    firm_id: np.ndarray
    sector: np.ndarray
    firm_type: np.ndarray
    emissions: np.ndarray
    output: np.ndarray
    allocation: np.ndarray | None
    mac: MACCurves
    base_year: int
    options: TechOptions | None = None
    active_from: np.ndarray | None = None
    active_until: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of firms."""
        return int(self.emissions.size)


def _split_counts(n: int, shares: np.ndarray) -> np.ndarray:
    """Split ``n`` into integer counts proportional to ``shares`` (largest remainder)."""
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _lognormal_factor(
    rng: np.random.Generator, sigma: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Mean-one log-normal factors ``exp(sigma*Z - sigma**2/2)`` of the given shape."""
    return np.exp(sigma * rng.standard_normal(shape) - sigma * sigma / 2.0)


def _draw_mac(rng: np.random.Generator, sector: np.ndarray, emissions: np.ndarray,
              base_year: int = 2023) -> tuple[MACCurves, TechOptions]:
    """Step MAC curves from each firm's sector options with per-firm cost and potential spread.

    Option costs (yuan/t) and potentials (share of emissions) are multiplied by mean-one
    log-normal factors (``cost_sigma``, ``potential_sigma``); a firm's potential shares are scaled
    down to sum to at most ``MAX_POTENTIAL_SHARE``.

    Returns:
        The curves of all options and the same draws per option (:class:`TechOptions`).
    """
    tab, row, options = _option_layout()
    n_opt = row.shape[1]
    index = {name: i for i, name in enumerate(SECTORS)}
    s = np.fromiter((index.get(x, -1) for x in sector), np.int64, len(sector))  # sector codes
    drawn = tab["cost"][s] * _lognormal_factor(rng, tab["cost_sigma"][s], (s.size, n_opt))
    # Padding slots (sectors with fewer options) get zero potential at the firm's cheapest cost,
    # so they add only a zero-width point and never change where a curve starts or ends.
    real = (tab["potential"] > 0)[s]
    cheapest = np.where(real, drawn, np.inf).min(axis=1, initial=np.inf)
    cost = np.where(real, drawn, np.where(np.isfinite(cheapest), cheapest, 0.0)[:, None])
    share = tab["potential"][s] * _lognormal_factor(rng, tab["potential_sigma"][s], (s.size, n_opt))
    total = share.sum(axis=1)
    share *= np.minimum(1.0, MAX_POTENTIAL_SHARE / np.where(total > 0, total, 1.0))[:, None]
    emissions = np.asarray(emissions, dtype=np.float64)
    curves = MACCurves.from_options(share * emissions[:, None], cost)
    # The same draws per slot, with the table row of each slot (-1: padding).
    return curves, dataclasses.replace(options, cost=cost, potential=share,
                                       base_year=int(base_year), option=row[s])


@functools.cache
def _option_layout() -> tuple[dict[str, np.ndarray], np.ndarray, TechOptions]:
    """``technologies.csv`` laid out per sector (read once, arrays read-only): the options'
    cost, cost_sigma, potential and potential_sigma as ``(n_sectors, k)`` slot tables (0 in
    padding), the table row of each slot (-1: padding) and the per-option vectors (a
    :class:`TechOptions` without firms)."""
    tech = technology_table()
    n_opt = int(tech.groupby("sector").size().max())
    shape = (len(SECTORS), n_opt)
    tab = {k: np.zeros(shape) for k in ("cost", "cost_sigma", "potential", "potential_sigma")}
    code = pd.Categorical(tech["sector"], categories=SECTORS).codes
    slot = tech.groupby("sector").cumcount().to_numpy()
    for k, arr in tab.items():
        arr[code, slot] = tech[k].to_numpy(dtype=np.float64)
    row = np.full(shape, -1, dtype=np.int64)
    row[code, slot] = np.arange(len(tech))
    options = _tech_options(tech, np.zeros((0, n_opt)), np.zeros((0, n_opt)), 0,
                            np.zeros((0, n_opt), dtype=np.int64))
    for a in (*tab.values(), row, *(getattr(options, f.name) for f in dataclasses.fields(options)
                                    if isinstance(getattr(options, f.name), np.ndarray))):
        a.flags.writeable = False
    return tab, row, options


def _tech_options(tech: pd.DataFrame, cost: np.ndarray, share: np.ndarray,
                  base_year: int, option: np.ndarray | None = None) -> TechOptions:
    """Per-option vectors from ``technologies.csv``; a table without the dynamics columns gives
    operational options available from the start, without learning (the static model)."""
    n = len(tech)

    def col(name: str, default: float) -> np.ndarray:
        if name not in tech.columns:
            return np.full(n, default)
        return tech[name].to_numpy(dtype=np.float64, na_value=default)

    kind = (tech["kind"].to_numpy(dtype=object) if "kind" in tech.columns
            else np.full(n, "operational", dtype=object))
    life = np.where(kind == "capital", col("lifetime", 1.0), 0.0).astype(np.int64)
    return TechOptions(
        name=tech["option"].to_numpy(dtype=object), sector=tech["sector"].to_numpy(dtype=object),
        kind=kind, lifetime=life, learning_rate=col("learning_rate", 0.0),
        cost_decline=col("cost_decline", 0.0),
        first_year=col("first_year", -9999.0).astype(np.int64),
        initial_deployment=col("initial_deployment", 0.0),
        cost=cost, potential=share, base_year=int(base_year), option=option)


def _sector_ids(sector: str, n: int) -> np.ndarray:
    digits = np.strings.zfill(np.arange(1, n + 1).astype(np.str_), 5)
    return np.strings.add(f"{sector}-", digits).astype(object)


def synthetic_firms(
    rng: np.random.Generator, base_year: int = 2023, *, threshold: float = THRESHOLD
) -> Firms:
    """The calibrated synthetic national population of all nine ``SECTORS``.

    Per sector (``sectors.csv``) the entity count is exact and the emissions add up exactly to
    ``emissions_t`` carried from ``reference_year`` to ``base_year`` with the sector's
    ``output_growth`` and ``intensity_change``. Firm types get counts by ``share_of_firms`` and
    emission totals by ``share_of_emissions`` (``firm_types.csv``). Within a type, firm sizes are
    log-normal (``size_sigma``) conditioned on the threshold: each firm emits ``threshold`` plus
    its log-normal share of the type's excess over ``n * threshold``. Output is emissions /
    (type intensity x a log-normal firm factor, ``intensity_sigma``), normalised so that the
    type's emissions / output equals its mean intensity exactly. MAC curves come from
    ``technologies.csv`` (see ``_draw_mac``); ``options`` keeps the per-option draws.

    Args:
        rng: The only source of randomness.
        base_year: Year of the returned emissions and output.
        threshold: Inclusion threshold, t CO2e/yr; every firm emits at least this.

    Returns:
        The firms, ordered by sector (``SECTORS`` order) and type, without user allocation.

    Raises:
        ValueError: The data files are inconsistent (e.g. too little emissions for the count).
    """
    # The tables as numpy columns (pandas row and column look-ups per sector are slow).
    sectors = sector_table()
    row_of = {name: i for i, name in enumerate(sectors["sector"].to_numpy(dtype=object))}
    sec = {c: sectors[c].to_numpy() for c in ("output_growth", "intensity_change", "emissions_t",
                                              "reference_year", "n_firms", "size_sigma")}
    types = firm_type_table()
    type_sector = types["sector"].to_numpy(dtype=object)
    typ = {c: types[c].to_numpy(dtype=np.float64) for c in (
        "share_of_firms", "share_of_emissions", "intensity", "intensity_sigma")}
    type_name = types["firm_type"].to_numpy(dtype=object)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("id", "sector", "type", "em", "out")}
    for name in SECTORS:
        i = row_of[name]
        t = type_sector == name
        growth = (1.0 + float(sec["output_growth"][i])) * (1.0 + float(sec["intensity_change"][i]))
        total = float(sec["emissions_t"][i]) * growth ** (base_year - int(sec["reference_year"][i]))
        n = int(sec["n_firms"][i])
        counts = _split_counts(n, typ["share_of_firms"][t])
        share_e = typ["share_of_emissions"][t]
        type_total = total * share_e / share_e.sum()
        excess = type_total - counts * threshold
        if ((counts == 0) & (type_total > 0)).any() or ((counts > 0) & (excess <= 0)).any():
            raise ValueError(f"sectors.csv/firm_types.csv: sector {name!r}: too few firms or too "
                             "little emissions for the threshold in some firm type")
        k = np.repeat(np.arange(counts.size), counts)
        z = rng.lognormal(0.0, float(sec["size_sigma"][i]), n)
        em = threshold + excess[k] * z / np.bincount(k, z, minlength=counts.size)[k]
        intensity = typ["intensity"][t]
        sig = typ["intensity_sigma"][t]
        raw = em / (intensity[k] * np.exp(sig[k] * rng.standard_normal(n)))
        out = raw * (type_total / intensity)[k] / np.bincount(k, raw, minlength=counts.size)[k]
        parts["id"].append(_sector_ids(name, n))
        parts["sector"].append(np.full(n, name, dtype=object))
        parts["type"].append(type_name[t][k])
        parts["em"].append(em)
        parts["out"].append(out)
    sector = np.concatenate(parts["sector"])
    emissions = np.concatenate(parts["em"])
    mac, options = _draw_mac(rng, sector, emissions, base_year)
    return Firms(
        firm_id=np.concatenate(parts["id"]),
        sector=sector,
        firm_type=np.concatenate(parts["type"]),
        emissions=emissions,
        output=np.concatenate(parts["out"]),
        allocation=None,
        mac=mac,
        base_year=base_year,
        options=options,
    )
