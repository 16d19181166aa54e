"""Scenario: a TOML file -> a validated, typed, frozen description of one model run.

The schema is data: each setting is one row of a section dataclass,
``key: type = _key(default, kind, lo, hi, unit, doc)`` (see :class:`Rule`); :func:`schema` lists
the rows. Validation walks the rows generically; the few rules linking two keys are in
``_cross_check``. Every bad key or value raises :class:`model.errors.InputError` naming the file and
the field ("section.key"). TOML integers are accepted where numbers are expected; booleans are not.

Units: t = tonnes CO2(e); prices and penalties in yuan/t; shares and rates as fractions (0.02 = 2%).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from model.errors import InputError

SECTORS: tuple[str, ...] = (
    "power", "steel", "cement", "aluminium", "petrochemicals",
    "chemicals", "paper", "aviation", "flat_glass",
)
"""Every sector the model knows (single source of truth: population and policy import it)."""

YEARS: tuple[int, int] = (2000, 2100)
"""Range accepted for every year-valued setting (a guard against typos such as 221)."""

_REQUIRED = object()


@dataclass(frozen=True)
class Rule:
    """One row of the schema: how a key is checked and converted (its default is the field's).

    kind is "float", "int", "bool", "str", "path" (an existing file), "sectors" (array of sector
    names, or "all") or "sector_map" (table sector -> value checked by ``item``). lo/hi bound
    numbers (lo is the minimum length of a "str"); gt makes lo exclusive; optional allows None (key
    left out); finite=False allows inf; choices lists the allowed strings; unit and doc document it.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    doc: str = ""
    gt: bool = False
    optional: bool = False
    finite: bool = True
    choices: tuple[str, ...] = ()
    item: Rule | None = None


def _key(default: Any, kind: str, lo: float | None = None, hi: float | None = None,
         unit: str = "", doc: str = "", **flags: Any) -> Any:
    """A dataclass field carrying its Rule; ``default=_REQUIRED`` makes the key required."""
    meta = {"rule": Rule(kind, lo, hi, unit, doc, **flags)}
    if default is _REQUIRED:
        return field(metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


def _year(default: Any, doc: str, **flags: Any) -> Any:
    return _key(default, "int", *YEARS, "year", doc, **flags)


def _map(default: dict[str, Any], kind: str, lo: float | None, hi: float | None, unit: str,
         doc: str) -> Any:
    return _key(default, "sector_map", None, None, unit, doc, item=Rule(kind, lo, hi, unit))


def _section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": cls})


@dataclass(frozen=True)
class FirmsConfig:
    """[firms]: the user's firm tables; both None = the calibrated synthetic population."""

    table: Path | None = _key(None, "path", doc="firms.csv (firm_id, sector, emissions t/yr, ...)",
                              optional=True)
    mac: Path | None = _key(None, "path", doc="mac.csv (firm_id, abatement t, mac yuan/t); "
                            "needs table", optional=True)


@dataclass(frozen=True)
class CoverageConfig:
    """[coverage]: which firms are in the market. A given sectors table replaces the default."""

    sectors: dict[str, int] = _map(
        {"power": 2021, "steel": 2024, "cement": 2024, "aluminium": 2024}, "int", *YEARS, "year",
        "sector -> first covered vintage")
    threshold: float = _key(26000.0, "float", 0, None, "t CO2e/yr", "inclusion threshold")


@dataclass(frozen=True)
class AllocationConfig:
    """[allocation]: free allocation, absolute cap and auctions."""

    benchmark_decline: float = _key(0.01, "float", -0.5, 0.5, "1/yr", "share per year the "
                                    "intensity benchmarks fall after each sector's base year")
    grandfather_until: dict[str, int] = _map(
        {"steel": 2024, "cement": 2024, "aluminium": 2024}, "int", *YEARS, "year",
        "sector -> last vintage whose allocation equals verified emissions")
    absolute_cap_from: int | None = _year(None, "first year of an absolute cap (None = never)",
                                          optional=True)
    absolute_cap_sectors: tuple[str, ...] = _key(
        ("steel", "cement", "aluminium"), "sectors", doc='sectors under the absolute cap ("all" in '
        "TOML is stored as SECTORS)")
    absolute_cap_all_from: int | None = _year(None, "first year of an absolute cap for every "
                                              "covered sector (None = never)", optional=True)
    linear_reduction_factor: float = _key(0.02, "float", 0, 1, "1/yr",
                                          "share of the first absolute cap removed each year")
    auction_share: float = _key(0.0, "float", 0, 1, "share",
                                "share of each year's allocation auctioned instead of given free")
    auction_share_growth: float = _key(0.0, "float", -1, 1, "share/yr", "added to auction_share "
                                       "each year after start_year (result clipped to [0, 1])")
    gas_never_short: bool = _key(True, "bool", doc="a gas unit's obligation never exceeds its "
                                 "allocation")
    coal_shortfall_cap: float | None = _key(None, "float", 0, None, "share", "a coal unit's "
                                            "obligation is at most allocation * (1 + cap)",
                                            optional=True)


@dataclass(frozen=True)
class OffsetsConfig:
    """[offsets]: CCER offsets."""

    limit: float = _key(0.05, "float", 0, 1, "share", "maximum share of an obligation met by CCERs")
    supply: Path | None = _key(None, "path", doc="ccer.csv (quantity t, cost yuan/t); None = the "
                               "calibrated CCER project data", optional=True)
    supply_scale: float = _key(1.0, "float", 0, None, "factor", "multiplier on CCER quantities")
    old_ccer_until: int = _year(2023, "last vintage for which pre-2017 CCERs count")


@dataclass(frozen=True)
class ComplianceConfig:
    """[compliance]: penalties. After validation exactly one of penalty, penalty_multiple is set."""

    penalty: float | None = _key(None, "float", 0, None, "yuan/t", "flat penalty per t short",
                                 gt=True, optional=True)
    penalty_multiple: float | None = _key(5.0, "float", 1, None, "factor", "penalty per t as a "
                                          "multiple of the previous average price", optional=True)
    reference_price: float = _key(50.0, "float", 0, None, "yuan/t", "the previous average price "
                                  "used for the first year's penalty_multiple", gt=True)
    deduct_shortfall: bool = _key(True, "bool", doc="deduct a shortfall from next allocation")


@dataclass(frozen=True)
class PricesConfig:
    """[prices]: allowance price bounds (floor < ceiling)."""

    floor: float = _key(0.0, "float", 0, None, "yuan/t", "price floor")
    ceiling: float = _key(math.inf, "float", 0, None, "yuan/t", "price ceiling (inf = none)",
                          gt=True, finite=False)


@dataclass(frozen=True)
class MarketConfig:
    """[market]: trading between firms."""

    trading: bool = _key(True, "bool", doc="false = each firm complies alone, no trading")


@dataclass(frozen=True)
class BankingConfig:
    """[banking]: carrying allowances over to later compliance years."""

    enabled: bool = _key(True, "bool", doc="false = allowances expire after their year")
    carry_over: str = _key("china", "str", doc='"china" (base + sales_multiple x net sales), '
                           '"unlimited" or "none"', choices=("china", "unlimited", "none"))
    base: float = _key(10000.0, "float", 0, None, "t", "carry-over base per entity")
    base_new_sectors: float = _key(100000.0, "float", 0, None, "t",
                                   "carry-over base per entity of the newly covered sectors")
    sales_multiple: float = _key(1.5, "float", 0, None, "factor",
                                 "multiple of net sales that may be carried over")
    borrowing: float = _key(0.0, "float", 0, 1, "share", "share of next year's allocation a firm "
                            "may borrow (0 = none)")


@dataclass(frozen=True)
class GrowthConfig:
    """[growth]: overrides of the sector data's yearly rates (sectors left out keep the data's)."""

    output: dict[str, float] = _map({}, "float", -0.5, 0.5, "1/yr", "sector -> output growth rate")
    intensity: dict[str, float] = _map({}, "float", -0.5, 0.5, "1/yr",
                                       "sector -> autonomous emission-intensity change")


@dataclass(frozen=True)
class MacConfig:
    """[mac]: scaling of the calibrated MAC curves (the most uncertain inputs)."""

    cost_scale: dict[str, float] = _map({}, "float", 0, None, "factor",
                                        "sector -> multiplier on the sector's abatement costs")
    potential_scale: dict[str, float] = _map({}, "float", 0, None, "factor",
                                             "sector -> multiplier on abatement potentials")


@dataclass(frozen=True)
class ExpectationsConfig:
    """[expectations]: how firms form the price they expect next year (shares sum to 1)."""

    myopic: float = _key(1.0, "float", 0, 1, "share", "share of firms expecting this year's price "
                         "to last")
    adaptive: float = _key(0.0, "float", 0, 1, "share", "share of firms expecting a weighted "
                           "average of past prices")
    perfect: float = _key(0.0, "float", 0, 1, "share", "share of firms with perfect foresight of "
                          "the equilibrium price path")
    adaptive_weight: float = _key(0.5, "float", 0, 1, "share", "weight of the latest price in "
                                  "adaptive expectations")
    discount_rate: float = _key(0.05, "float", 0, 1, "1/yr", "firms' discount rate for banking "
                                "and investment")


@dataclass(frozen=True)
class InvestmentConfig:
    """[investment]: capital abatement options with a lifetime, learning and later options."""

    enabled: bool = _key(False, "bool", doc="firms invest in capital options (locked in for "
                         "their lifetime) besides the yearly operational ones")
    learning: bool = _key(True, "bool", doc="option costs fall with cumulative adoption and time")
    demography: bool = _key(True, "bool", doc="with investment: firm-level output growth, plant "
                            "retirement and entry (model/data/demography.csv)")


@dataclass(frozen=True)
class FrictionsConfig:
    """[frictions]: departures from the frictionless market."""

    own_surplus_share: float = _key(0.0, "float", 0, 1, "share", "share of firms that only sell "
                                    "their own surplus and never buy")
    no_trade_share: float = _key(0.0, "float", 0, 1, "share", "share of firms that never trade")
    transaction_cost: float = _key(0.0, "float", 0, None, "yuan/t", "cost per tonne traded, paid "
                                   "by buyer and seller alike")


@dataclass(frozen=True)
class Scenario:
    """One model run: build with :func:`load_scenario` or :meth:`from_dict`; vary with replace().

    Building the dataclasses directly (or with ``dataclasses.replace``) skips validation.
    ``source`` is the TOML file read (absolute) or None; it does not take part in equality.
    """

    name: str = _key(_REQUIRED, "str", 1, doc="scenario name")
    seed: int = _key(_REQUIRED, "int", 0, doc="seed of the random number generator")
    start_year: int = _year(_REQUIRED, "first compliance year simulated")
    end_year: int = _year(_REQUIRED, "last compliance year simulated (>= start_year)")
    description: str = _key("", "str", doc="free text")
    firms: FirmsConfig = _section(FirmsConfig)
    coverage: CoverageConfig = _section(CoverageConfig)
    allocation: AllocationConfig = _section(AllocationConfig)
    offsets: OffsetsConfig = _section(OffsetsConfig)
    compliance: ComplianceConfig = _section(ComplianceConfig)
    prices: PricesConfig = _section(PricesConfig)
    market: MarketConfig = _section(MarketConfig)
    banking: BankingConfig = _section(BankingConfig)
    growth: GrowthConfig = _section(GrowthConfig)
    mac: MacConfig = _section(MacConfig)
    expectations: ExpectationsConfig = _section(ExpectationsConfig)
    investment: InvestmentConfig = _section(InvestmentConfig)
    frictions: FrictionsConfig = _section(FrictionsConfig)
    source: Path | None = field(default=None, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | Path = "<dict>", *,
                  base_dir: str | Path | None = None) -> Scenario:
        """Validate a dict shaped like the TOML file and build a Scenario.

        Args:
            d: Top-level keys plus one sub-dict per section. None for an optional key = left out.
            source: Names the input in error messages; a Path is also stored as ``source``.
            base_dir: Folder relative paths resolve against; default: the folder of ``source`` if it
                is a Path, else the current directory.

        Raises:
            InputError: file=str(source), field="section.key", on any bad key or value.
        """
        path = _absolute(source) if isinstance(source, Path) else None
        if base_dir is None:
            base_dir = path.parent if path is not None else Path.cwd()
        return _build(d, str(source), path, _absolute(base_dir))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings (paths as str, None values left out), e.g. for run manifests.

        ``Scenario.from_dict(s.to_dict()) == s``; ``source`` is not included.
        """
        return _to_dict(self)

    def replace(self, **changes: Any) -> Scenario:
        """A validated variant, e.g. ``s.replace(seed=2, allocation={"auction_share": 0.1})``.

        A section takes a dict of keys to change (merged into the section) or a config object.
        Setting compliance.penalty clears penalty_multiple and vice versa. Relative paths resolve
        against the source's folder (else the current directory).

        Raises:
            InputError: As :meth:`from_dict`, with file "<replace>".
        """
        d = self.to_dict()
        for key, value in changes.items():
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = _to_dict(value)
            elif isinstance(value, Mapping) and isinstance(d.get(key), dict):
                if key == "compliance" and (value.get("penalty") is None) != (
                        value.get("penalty_multiple") is None):  # one given: it replaces the other
                    d[key].pop("penalty", None), d[key].pop("penalty_multiple", None)
                value = {**d[key], **value}
            d[key] = value
        base_dir = self.source.parent if self.source is not None else Path.cwd()
        return _build(d, "<replace>", self.source, base_dir)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario TOML file; relative paths in it resolve against its folder.

    A top-level ``base = "other.toml"`` (relative to the file) makes the file a variant: the base
    scenario's settings, with this file's keys replacing them section by section.

    Raises:
        InputError: Naming the file, and the line (TOML syntax) or the field (bad setting).
    """
    path = Path(path)
    return Scenario.from_dict(_read_with_base(path, depth=0), source=path)


def _read_with_base(path: Path, depth: int) -> dict[str, Any]:
    """The TOML of ``path`` merged over its ``base`` chain (paths made absolute)."""
    data = _read_toml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise InputError(path, f"expected a scenario file name, got {_got(base)}", field="base")
    if depth > 8:
        raise InputError(path, "too many nested base scenarios (a cycle?)", field="base")
    base_path = path.parent / base
    if not base_path.is_file():
        raise InputError(path, f"base scenario not found: {_absolute(base_path)}", field="base")
    merged = _read_with_base(base_path, depth + 1)
    for key in (k for k, r in schema().items() if r.kind == "path"):  # keep them pointing home
        section, name = key.split(".")
        value = merged.get(section, {}).get(name)
        if isinstance(value, str):
            merged[section][name] = str(_absolute(base_path.parent / value))
    return _merge(merged, data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, tables merged key by key (sector tables too)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(path, "scenario file not found") from None
    except OSError as e:
        raise InputError(path, f"cannot read the scenario file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise InputError(path, f"not UTF-8 text (bad byte at offset {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m is None:
            raise InputError(path, f"invalid TOML: {msg}") from None
        problem = f"invalid TOML: {msg[:m.start()].strip()} (column {m.group(2)})"
        raise InputError(path, problem, line=int(m.group(1))) from None


# --- generic validation ------------------------------------------------------------------------

class _Bad(Exception):
    """One bad value: its dotted field name and the problem (_build adds the file)."""

    def __init__(self, field_name: str | None, problem: str) -> None:
        super().__init__(problem)
        self.field_name, self.problem = field_name, problem


def _num(x: float) -> str:
    """Compact number text: 1 not 1.0; 0.5; inf."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _got(v: Any) -> str:
    """How a bad value is shown after 'got'."""
    if v is None or isinstance(v, bool):
        return "nothing" if v is None else f"{str(v).lower()} (a boolean)"
    if isinstance(v, numbers.Real):
        return _num(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return f"the string {v!r}"
    return "a table" if isinstance(v, Mapping) else "an array" if isinstance(v, (list, tuple)) \
        else f"{type(v).__name__} {v!r}"


def _expected(r: Rule) -> str:
    """What a rule accepts, e.g. 'a number in [0, 1]'."""
    if r.kind == "str":
        return ("one of " + ", ".join(map(repr, r.choices)) if r.choices
                else "a non-empty string" if r.lo else "a string")
    if r.kind not in ("float", "int"):
        return {"bool": "true or false", "path": "a file path (string)",
                "sectors": 'an array of sector names, or "all"',
                "sector_map": "a table of sector = value"}[r.kind]
    base = "an integer" if r.kind == "int" else "a number"
    if r.lo is not None and r.hi is not None:
        return f"{base} in {'(' if r.gt else '['}{_num(r.lo)}, {_num(r.hi)}]"
    base = "a finite number" if r.kind == "float" and r.finite else base
    if r.lo is not None:
        return f"{base} {'>' if r.gt else '>='} {_num(r.lo)}"
    return base if r.hi is None else f"{base} <= {_num(r.hi)}"


def _unknown(what: str, word: Any, options: list[str] | tuple[str, ...]) -> str:
    """'unknown sector 'x' (did you mean 'y'?); expected one of ...'."""
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {str(word)!r}{hint}; expected one of " + ", ".join(options)


def _check(r: Rule, v: Any, name: str, base_dir: Path) -> Any:
    """Validate one value against its rule; return it converted (float, tuple, absolute Path...)."""
    if v is None and r.optional:
        return None
    bad = _Bad(name, f"expected {_expected(r)}, got {_got(v)}")
    if r.kind == "bool":
        if type(v) is not bool:
            raise bad
    elif r.kind in ("int", "float"):
        if isinstance(v, bool) or not isinstance(
                v, numbers.Integral if r.kind == "int" else numbers.Real):
            raise bad
        try:
            v = float(v) if r.kind == "float" else int(v)
        except OverflowError:
            raise bad from None
        if math.isnan(v) or (r.finite and math.isinf(v)):
            raise bad
        below = r.lo is not None and (v <= r.lo if r.gt else v < r.lo)
        if below or (r.hi is not None and v > r.hi):
            raise bad
    elif r.kind == "str":
        if not isinstance(v, str) or (r.choices and v not in r.choices) or len(v) < (r.lo or 0):
            raise bad
    elif r.kind == "path":
        if not isinstance(v, (str, os.PathLike)) or not str(v):
            raise bad
        p = Path(v)
        v = _absolute(base_dir / p)
        if not v.is_file():
            rel = "" if p.is_absolute() else f" (relative paths resolve against {base_dir})"
            raise _Bad(name, f"file not found: {v}{rel}")
    elif r.kind == "sectors":
        if v == "all":
            return SECTORS
        if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) for s in v):
            raise bad
        for s in v:
            if s not in SECTORS:
                raise _Bad(name, _unknown("sector", s, SECTORS))
        if len(set(v)) < len(v):
            raise _Bad(name, f"a sector is listed twice in {list(v)}")
        v = tuple(v)
    elif r.kind == "sector_map":
        if not isinstance(v, Mapping) or r.item is None:
            raise bad
        for s in v:
            if s not in SECTORS:
                raise _Bad(f"{name}.{s}", _unknown("sector", s, SECTORS))
        v = {s: _check(r.item, x, f"{name}.{s}", base_dir) for s, x in v.items()}
    else:
        raise AssertionError(f"unknown rule kind {r.kind!r}")
    return v


def _absolute(path: str | Path) -> Path:
    """Absolute and normalised ("a/../b" -> "b"), symlinks kept."""
    return Path(os.path.abspath(path))


def _make(cls: type, raw: Any, prefix: str, base_dir: Path, **extra: Any) -> Any:
    """Check a section (or the top level, prefix "") against the rows of ``cls``; build it."""
    if not isinstance(raw, Mapping):
        where = f"a table [{prefix}]" if prefix else "a table of settings"
        raise _Bad(prefix or None, f"expected {where}, got {_got(raw)}")
    rows = {f.name: f for f in fields(cls) if "rule" in f.metadata or "section" in f.metadata}
    for k in raw:
        if k not in rows:
            problem = _unknown("key", k, list(rows))
            if prefix and k in _TOP_LEVEL:
                problem += " (top-level keys must come before the first [section] in TOML)"
            raise _Bad(f"{prefix}.{k}" if prefix else str(k), problem)
    kwargs: dict[str, Any] = {}  # sections first: "[firms] seed = 1" is reported as firms.seed
    for k, f in sorted(rows.items(), key=lambda kv: "section" not in kv[1].metadata):
        name = f"{prefix}.{k}" if prefix else k
        if "section" in f.metadata:
            kwargs[k] = _make(f.metadata["section"], raw.get(k, {}), k, base_dir)
        elif raw.get(k) is not None:
            kwargs[k] = _check(f.metadata["rule"], raw[k], name, base_dir)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise _Bad(name, f"missing required key; expected {_expected(f.metadata['rule'])}")
        elif k in raw and not f.metadata["rule"].optional:
            raise _Bad(name, f"expected {_expected(f.metadata['rule'])}, got nothing")
    return _cross_check(cls(**kwargs, **extra), raw)


def _cross_check(obj: Any, raw: Mapping[str, Any]) -> Any:
    """The rules linking two keys of one section (or of the top level)."""
    if isinstance(obj, Scenario) and obj.end_year < obj.start_year:
        raise _Bad("end_year",
                   f"expected a year >= start_year ({obj.start_year}), got {obj.end_year}")
    if isinstance(obj, FirmsConfig) and obj.mac is not None and obj.table is None:
        raise _Bad("firms.mac", "a MAC table needs firms.table (the firm table it describes)")
    if isinstance(obj, ExpectationsConfig):
        total = obj.myopic + obj.adaptive + obj.perfect
        if abs(total - 1.0) > 1e-9:
            field_name = next((f"expectations.{k}" for k in ("perfect", "adaptive", "myopic")
                               if k in raw), "expectations.myopic")
            raise _Bad(field_name, "expected myopic + adaptive + perfect = 1, got "
                       f"{_num(total)}")
    if isinstance(obj, FrictionsConfig) and obj.own_surplus_share + obj.no_trade_share > 1:
        raise _Bad("frictions.no_trade_share", "expected own_surplus_share + no_trade_share <= 1")
    if isinstance(obj, PricesConfig) and not obj.floor < obj.ceiling:
        raise _Bad("prices.ceiling", f"expected a number > prices.floor ({_num(obj.floor)}), "
                   f"got {_num(obj.ceiling)}")
    if isinstance(obj, ComplianceConfig) and obj.penalty is not None:
        if raw.get("penalty_multiple") is not None:
            raise _Bad("compliance.penalty", "give either penalty (flat yuan/t) or "
                       "penalty_multiple (x the previous average price), not both")
        return dataclasses.replace(obj, penalty_multiple=None)
    return obj


_TOP_LEVEL = frozenset(f.name for f in fields(Scenario) if "rule" in f.metadata)
SECTIONS: dict[str, type] = {f.name: f.metadata["section"] for f in fields(Scenario)
                             if "section" in f.metadata}
"""Section name -> its config dataclass, in file order."""


def _build(d: Any, label: str, source: Path | None, base_dir: Path) -> Scenario:
    try:
        scenario: Scenario = _make(Scenario, d, "", base_dir, source=source)
    except _Bad as e:
        raise InputError(label, e.problem, field=e.field_name) from None
    return scenario


def _to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if "section" in f.metadata:
            out[f.name] = _to_dict(v)
        elif "rule" in f.metadata and v is not None:
            out[f.name] = (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple)
                           else dict(v) if isinstance(v, dict) else v)
    return out


def schema() -> dict[str, Rule]:
    """The schema table: "section.key" -> Rule (e.g. for docs and slider ranges; defaults are the
    dataclass fields')."""
    return {(f"{p}." if p else "") + f.name: f.metadata["rule"]
            for p, cls in [("", Scenario), *SECTIONS.items()] for f in fields(cls)
            if "rule" in f.metadata}
