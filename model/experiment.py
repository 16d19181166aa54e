"""Experiment: a TOML file in ``experiments/`` -> a validated description of a batch of runs.

An experiment names a base scenario, the parameters to vary, the seeds, the years and the
outputs to keep::

    name = "offset_limit"
    base = "scenarios/baseline.toml"   # relative to the experiment file
    seeds = 2                          # the base scenario's seed and the next; or [42, 7]
    years = [2021, 2040]               # optional: start_year, end_year of every run
    outputs = ["cea_price", "ccer_price", "ccer_used", "total_cost"]   # or "all"
    counterfactual = false             # also the cost without trading (trading runs)

    [design]
    method = "grid"                    # "grid" (full factorial), "sobol" or "morris"

    [[parameter]]
    key = "offsets.limit"              # a dotted scenario key ...
    range = [0.0, 0.10]                # ... with values, range + step / num, or bounds
    step = 0.01

    [[parameter]]
    name = "coverage"                  # a bundle: each value sets several keys, labelled
    labels = ["power", "all"]
    values = [{ "coverage.sectors" = { power = 2021 } },
              { "coverage.sectors" = { power = 2021, steel = 2024 } }]

A parameter is a dotted scenario key (``allocation.benchmark_decline``; ``growth.output.power`` or
``mac.cost_scale.steel`` for one sector of a sector table). ``keys = [...]`` gives one value to
several keys. The string ``"none"`` as a value leaves a key out (its default;
``allocation.absolute_cap_from = "none"`` means no absolute cap). Sampled parameters (Sobol,
Morris) take ``bounds = [lo, hi]``, optionally ``log = true`` (log-uniform) and ``integer = true``
(rounded). ``[metrics]`` turns each run into scalars for the sensitivity analysis::

    [metrics]
    cea_price_2030 = { column = "cea_price", year = 2030 }
    emissions_total = { column = "emissions", stat = "sum", years = [2021, 2060] }

Every problem raises :class:`model.errors.InputError` naming the experiment file and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import numbers
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import InputError
from model.model import YEAR_COLUMNS
from model.scenario import SECTORS, Scenario, load_scenario, schema

EXTRA_OUTPUTS = ("transaction_costs", "total_cost_no_trading",
                 "resource_cost_no_trading",
                 "total_cost_with_trading", "resource_cost_with_trading", "gain_from_trade")
"""History columns besides ``YEAR_COLUMNS``, some only in some runs (counterfactual, no trading)."""
OUTPUTS = tuple(dict.fromkeys(c for c in (*YEAR_COLUMNS, *EXTRA_OUTPUTS) if c != "year"))
"""Every yearly output a sweep can keep (``year`` is always kept)."""
METHODS = ("grid", "sobol", "morris")
STATS = ("value", "sum", "mean", "max", "min")
NONE = "none"

_TOP = {"name", "description", "base", "seeds", "years", "outputs", "counterfactual", "design",
        "parameter", "metrics"}
_PARAM = {"key", "keys", "name", "values", "labels", "range", "step", "num", "bounds", "log",
          "integer"}
_DESIGN = {"method", "n", "second_order", "trajectories", "levels", "seed", "resamples",
           "conf_level"}


@dataclass(frozen=True)
class Parameter:
    """One varied parameter; its column in the result table is ``name``.

    Attributes:
        name: Column name (the key itself for a single key).
        keys: Dotted keys set to the value; empty for a bundle (each value is a table of keys).
        values: Grid values (None for a sampled parameter).
        labels: Column values shown instead of the values (same length), or None.
        bounds: ``(lo, hi)`` of a sampled parameter, in the parameter's unit.
        log: Sampled log-uniformly between the bounds.
        integer: Sampled values are rounded to integers.
    """

    name: str
    keys: tuple[str, ...]
    values: tuple[Any, ...] | None = None
    labels: tuple[str, ...] | None = None
    bounds: tuple[float, float] | None = None
    log: bool = False
    integer: bool = False

    def assignments(self, value: Any) -> dict[str, Any]:
        """Dotted key -> value set by one value of this parameter."""
        return {k: value for k in self.keys} if self.keys else dict(value)

    def column(self, value: Any) -> Any:
        """The value stored in the result table (label, number, None or compact JSON)."""
        if self.labels is not None and self.values is not None:
            return self.labels[self.values.index(value)]
        if value is None or isinstance(value, (bool, numbers.Real, str)):
            return value
        return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Metric:
    """A scalar of one run for the sensitivity analysis: a column at a year or a statistic."""

    column: str
    stat: str = "value"
    year: int | None = None
    years: tuple[int, int] | None = None


@dataclass(frozen=True)
class Design:
    """How the parameter points are chosen (see the module docstring)."""

    method: str = "grid"
    n: int = 256
    second_order: bool = False
    trajectories: int = 20
    levels: int = 4
    seed: int = 1
    resamples: int = 1000
    conf_level: float = 0.95


@dataclass(frozen=True)
class Run:
    """One model run of a sweep: a point of the design and a seed (picklable, self-contained).

    Attributes:
        run: Index of the run (the row order of the result table).
        point: Index of the design point (runs of one point differ only by seed).
        seed: The scenario seed.
        params: Column name -> column value of each parameter.
        scenario: The run's complete scenario as a dict (:meth:`Scenario.to_dict`).
    """

    run: int
    point: int
    seed: int
    params: tuple[tuple[str, Any], ...]
    scenario: dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    """A validated experiment; :meth:`runs` lists its runs in a fixed order."""

    name: str
    description: str
    path: Path
    sha256: str
    base: Scenario
    seeds: tuple[int, ...]
    outputs: tuple[str, ...]
    counterfactual: bool
    design: Design
    parameters: tuple[Parameter, ...]
    metrics: dict[str, Metric]

    def points(self) -> list[tuple[Any, ...]]:
        """The design points: one value per parameter (sampled values already transformed)."""
        if self.design.method == "grid":
            return list(itertools.product(*(p.values for p in self.parameters)))
        from model.sensitivity import design_points
        return design_points(self)

    def runs(self) -> list[Run]:
        """Every run: design points in order, then seeds."""
        base, out = self.base.to_dict(), []
        for i, point in enumerate(self.points()):
            scenario = apply(base, self.parameters, point)
            params = tuple((p.name, p.column(v)) for p, v in zip(self.parameters, point))
            for seed in self.seeds:
                out.append(Run(len(out), i, seed, params, {**scenario, "seed": seed}))
        return out

    def design_hash(self) -> str:
        """Hash of what determines the results (runs, outputs, counterfactual), hex."""
        spec = [self.outputs, self.counterfactual,
                [(r.params, r.scenario) for r in self.runs()]]
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment TOML file (relative ``base`` resolves against its folder).

    Raises:
        InputError: Naming the file and the field (``parameter[2].values[1]``, ``design.n`` ...).
    """
    path = Path(path).resolve()
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise InputError(path, "experiment file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read the experiment: {e}") from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        line = int(m.group(1)) if m else None
        msg = str(e)[:m.start()].strip() + f" (column {m.group(2)})" if m else str(e)
        raise InputError(path, f"invalid TOML: {msg}", line=line) from None
    return _Reader(path, hashlib.sha256(raw).hexdigest()).build(data)


def apply(base: dict[str, Any], parameters: tuple[Parameter, ...], point: tuple[Any, ...]
          ) -> dict[str, Any]:
    """Set one design point on a scenario dict.

    Args:
        base: ``Scenario.to_dict()`` of the base scenario (not modified).
        parameters: The experiment's parameters.
        point: One value per parameter.

    Returns:
        The changed scenario dict (a copy).
    """
    d = json.loads(json.dumps(base))  # a deep copy of plain data
    for p, v in zip(parameters, point):
        for key, value in p.assignments(v).items():
            *parents, leaf = key.split(".")
            node = d
            for part in parents:
                node = node.setdefault(part, {})
            if value is None:
                node.pop(leaf, None)
            else:
                node[leaf] = list(value) if isinstance(value, tuple) else value
    return d


def is_scenario_key(key: str) -> bool:
    """Whether a dotted key names a scenario setting (or a sector of a sector table)."""
    rules = schema()
    if key in rules:
        return True
    prefix, _, sector = key.rpartition(".")
    return prefix in rules and rules[prefix].kind == "sector_map" and sector in SECTORS


def _check_key(key: str) -> str | None:
    """None if ``key`` can be varied, else the problem."""
    if key in ("seed", "name", "description"):
        return f"{key!r} cannot be varied (seeds: use 'seeds')"
    if is_scenario_key(key):
        return None
    known = list(schema())
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown parameter key {key!r}{hint}; expected a scenario key such as "
            f"'allocation.benchmark_decline', 'growth.output.power' or 'mac.cost_scale.steel'")


class _Reader:
    """Builds an Experiment, raising InputError(file, field) on the first problem."""

    def __init__(self, path: Path, sha: str) -> None:
        self.path, self.sha = path, sha

    def bad(self, field: str | None, problem: str) -> InputError:
        return InputError(self.path, problem, field=field)

    def get(self, d: dict, key: str, kinds: type | tuple[type, ...], field: str,
            default: Any = None, what: str = "") -> Any:
        if key not in d:
            if default is _REQ:
                raise self.bad(field, f"missing required key; expected {what}")
            return default
        v = d[key]
        if isinstance(v, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise self.bad(field, f"expected {what}, got {v!r}")
        if not isinstance(v, kinds):
            raise self.bad(field, f"expected {what}, got {v!r}")
        return v

    def unknown(self, d: dict, allowed: set[str], prefix: str) -> None:
        for k in d:
            if k not in allowed:
                close = difflib.get_close_matches(k, sorted(allowed), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.bad(f"{prefix}{k}", f"unknown key {k!r}{hint}; expected one of "
                               + ", ".join(sorted(allowed)))

    def build(self, d: dict) -> Experiment:
        self.unknown(d, _TOP, "")
        name = self.get(d, "name", str, "name", _REQ, "a non-empty string")
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise self.bad("name", f"expected letters, digits, - or _, got {name!r}")
        base_rel = self.get(d, "base", str, "base", _REQ, "a scenario file path")
        try:
            base = load_scenario(self.path.parent / base_rel)
        except InputError as e:
            raise self.bad("base", str(e)) from None
        years = self.get(d, "years", list, "years", None, "[start_year, end_year]")
        if years is not None:
            if len(years) != 2 or not all(isinstance(y, int) and not isinstance(y, bool)
                                          for y in years):
                raise self.bad("years", f"expected [start_year, end_year], got {years!r}")
            base = self.replace(base, {"start_year": years[0], "end_year": years[1]}, "years")
        seeds = self.seeds(d.get("seeds", 1), base.seed)
        outputs = self.outputs(d.get("outputs", "all"))
        counterfactual = self.get(d, "counterfactual", bool, "counterfactual", False,
                                  "true or false")
        design = self.design(self.get(d, "design", dict, "design", {}, "a table [design]"))
        raw_params = self.get(d, "parameter", list, "parameter", [], "[[parameter]] tables")
        params = tuple(self.parameter(p, i, design.method) for i, p in enumerate(raw_params))
        names = [p.name for p in params]
        for n in names:
            if names.count(n) > 1:
                raise self.bad("parameter", f"two parameters are named {n!r}")
        if design.method != "grid" and not params:
            raise self.bad("parameter", f"a {design.method} design needs parameters")
        metrics = self.metrics(self.get(d, "metrics", dict, "metrics", {}, "a table [metrics]"),
                               outputs, base)
        if design.method != "grid" and not metrics:
            raise self.bad("metrics", f"a {design.method} design needs [metrics]")
        exp = Experiment(name, self.get(d, "description", str, "description", "", "a string"),
                         self.path, self.sha, base, seeds, outputs, counterfactual, design,
                         params, metrics)
        self.check_points(exp)
        return exp

    def replace(self, base: Scenario, changes: dict[str, Any], field: str) -> Scenario:
        try:
            return Scenario.from_dict({**base.to_dict(), **changes}, source=base.source or "")
        except InputError as e:
            raise self.bad(field, f"{e.field}: {e.problem}" if e.field else e.problem) from None

    def seeds(self, v: Any, first: int) -> tuple[int, ...]:
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return tuple(first + i for i in range(v))
        if (isinstance(v, list) and v and len(set(v)) == len(v)
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)):
            return tuple(v)
        raise self.bad("seeds",
                       f"expected a count >= 1 or a list of distinct seeds >= 0, got {v!r}")

    def outputs(self, v: Any) -> tuple[str, ...]:
        if v == "all":
            return OUTPUTS
        if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
            raise self.bad("outputs", f'expected "all" or a list of output names, got {v!r}')
        for i, s in enumerate(v):
            if s not in OUTPUTS:
                close = difflib.get_close_matches(s, OUTPUTS, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.bad(f"outputs[{i}]", f"unknown output {s!r}{hint}; expected one of "
                               + ", ".join(OUTPUTS))
        return tuple(dict.fromkeys(v))

    def design(self, d: dict) -> Design:
        self.unknown(d, _DESIGN, "design.")
        method = self.get(d, "method", str, "design.method", "grid", "a string")
        if method not in METHODS:
            raise self.bad("design.method", f"expected one of {', '.join(METHODS)}, got {method!r}")
        kw: dict[str, Any] = {"method": method}
        for key, lo in (("n", 2), ("trajectories", 2), ("levels", 2), ("seed", 0),
                        ("resamples", 10)):
            if key in d:
                kw[key] = self.get(d, key, int, f"design.{key}", what=f"an integer >= {lo}")
                if kw[key] < lo:
                    raise self.bad(f"design.{key}", f"expected an integer >= {lo}, got {kw[key]}")
        if "second_order" in d:
            kw["second_order"] = self.get(d, "second_order", bool, "design.second_order",
                                          what="true or false")
        if "conf_level" in d:
            kw["conf_level"] = self.get(d, "conf_level", (int, float), "design.conf_level",
                                        what="a number in (0, 1)")
            if not 0 < kw["conf_level"] < 1:
                raise self.bad("design.conf_level", f"expected a number in (0, 1), got "
                               f"{kw['conf_level']}")
        design = Design(**kw)
        if method == "sobol" and design.n & (design.n - 1):
            raise self.bad("design.n", f"expected a power of 2 for a Sobol sample, got {design.n}")
        return design

    def parameter(self, d: Any, i: int, method: str) -> Parameter:
        f = f"parameter[{i}]"
        if not isinstance(d, dict):
            raise self.bad(f, f"expected a [[parameter]] table, got {d!r}")
        self.unknown(d, _PARAM, f"{f}.")
        keys: list[str] = []
        if "key" in d:
            keys = [self.get(d, "key", str, f"{f}.key", what="a dotted scenario key")]
        if "keys" in d:
            if keys:
                raise self.bad(f"{f}.keys", "give either key or keys, not both")
            keys = self.get(d, "keys", list, f"{f}.keys", what="a list of dotted keys")
            if not keys or not all(isinstance(k, str) for k in keys):
                raise self.bad(f"{f}.keys", f"expected a list of dotted keys, got {keys!r}")
        for k in keys:
            if (problem := _check_key(k)) is not None:
                raise self.bad(f"{f}.key" if "key" in d else f"{f}.keys", problem)
        name = self.get(d, "name", str, f"{f}.name", keys[0] if len(keys) == 1 else None,
                        "a string")
        if not name:
            raise self.bad(f"{f}.name", "a parameter setting several keys (or a bundle of "
                           "tables of keys) needs a name, the column of the result table")
        log = self.get(d, "log", bool, f"{f}.log", False, "true or false")
        integer = self.get(d, "integer", bool, f"{f}.integer", False, "true or false")
        if method != "grid":
            return self.sampled(d, f, name, tuple(keys), log, integer)
        values = self.grid_values(d, f, bool(keys))
        if keys:
            values = tuple(self.path_value(keys[0], v) for v in values)
        labels = d.get("labels")
        if labels is not None:
            if (not isinstance(labels, list) or len(labels) != len(values)
                    or not all(isinstance(s, str) for s in labels)
                    or len(set(labels)) < len(labels)):
                raise self.bad(f"{f}.labels", f"expected {len(values)} distinct strings, one per "
                               f"value, got {labels!r}")
            labels = tuple(labels)
        return Parameter(name, tuple(keys), values, labels)

    def grid_values(self, d: dict, f: str, keyed: bool) -> tuple[Any, ...]:
        given = [k for k in ("values", "range") if k in d]
        if len(given) != 1:
            raise self.bad(f, "give exactly one of values = [...] or range = [start, stop] with "
                           "step or num (bounds are for sobol and morris designs)")
        if "values" in d:
            vals = self.get(d, "values", list, f"{f}.values", what="a non-empty list")
            if not vals:
                raise self.bad(f"{f}.values", "expected a non-empty list")
        else:
            vals = self.range(d, f)
        out = []
        for j, v in enumerate(vals):
            v = None if v == NONE else v
            if not keyed:
                if not isinstance(v, dict) or not v:
                    raise self.bad(f"{f}.values[{j}]", "a parameter without key needs tables of "
                                   f'dotted keys, e.g. {{ "offsets.limit" = 0.1 }}; got {v!r}')
                v = {k: (None if x == NONE else x) for k, x in v.items()}
                for k in v:
                    if (problem := _check_key(k)) is not None:
                        raise self.bad(f"{f}.values[{j}]", problem)
            v = {k: self.path_value(k, x) for k, x in v.items()} if not keyed else v
            out.append(_freeze(v))
        if len(set(map(repr, out))) < len(out):
            raise self.bad(f"{f}.values", "a value is listed twice")
        return tuple(out)

    def path_value(self, key: str, v: Any) -> Any:
        """A file path value relative to the experiment's folder, made absolute."""
        rule = schema().get(key)
        if rule is not None and rule.kind == "path" and isinstance(v, str):
            return str((self.path.parent / v).resolve())
        return v

    def range(self, d: dict, f: str) -> list[float]:
        r = self.get(d, "range", list, f"{f}.range", what="[start, stop]")
        if len(r) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                  for x in r) or not r[0] <= r[1]:
            raise self.bad(f"{f}.range", f"expected [start, stop] with start <= stop, got {r!r}")
        if ("step" in d) == ("num" in d):
            raise self.bad(f, "a range needs exactly one of step or num")
        if "num" in d:
            num = self.get(d, "num", int, f"{f}.num", what="an integer >= 2")
            if num < 2:
                raise self.bad(f"{f}.num", f"expected an integer >= 2, got {num}")
            return [round(r[0] + (r[1] - r[0]) * i / (num - 1), 12) for i in range(num)]
        step = self.get(d, "step", (int, float), f"{f}.step", what="a number > 0")
        if not step > 0:
            raise self.bad(f"{f}.step", f"expected a number > 0, got {step}")
        n = math.floor((r[1] - r[0]) / step + 1e-9) + 1
        ints = all(isinstance(x, int) for x in (*r, step))
        return [r[0] + i * step if ints else round(r[0] + i * step, 12) for i in range(n)]

    def sampled(self, d: dict, f: str, name: str, keys: tuple[str, ...], log: bool,
                integer: bool) -> Parameter:
        if not keys:
            raise self.bad(f"{f}.key", "a sampled parameter needs key or keys")
        for k in ("values", "range", "labels"):
            if k in d:
                raise self.bad(f"{f}.{k}", "sobol and morris designs sample bounds = [lo, hi]")
        b = self.get(d, "bounds", list, f"{f}.bounds", _REQ, "[lo, hi]")
        if len(b) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                  and math.isfinite(x) for x in b) or not b[0] < b[1]:
            raise self.bad(f"{f}.bounds", f"expected [lo, hi] with lo < hi, got {b!r}")
        if log and b[0] <= 0:
            raise self.bad(f"{f}.bounds", f"log = true needs bounds > 0, got {b!r}")
        return Parameter(name, keys, None, None, (float(b[0]), float(b[1])), log, integer)

    def metrics(self, d: dict, outputs: tuple[str, ...], base: Scenario) -> dict[str, Metric]:
        out = {}
        for name, m in d.items():
            f = f"metrics.{name}"
            if not isinstance(m, dict):
                raise self.bad(f, f"expected a table {{ column = ..., year = ... }}, got {m!r}")
            self.unknown(m, {"column", "stat", "year", "years"}, f"{f}.")
            col = self.get(m, "column", str, f"{f}.column", _REQ, "an output name")
            if col not in outputs:
                raise self.bad(f"{f}.column", f"{col!r} is not among the outputs kept")
            stat = self.get(m, "stat", str, f"{f}.stat", "value", "a string")
            if stat not in STATS:
                raise self.bad(f"{f}.stat", f"expected one of {', '.join(STATS)}, got {stat!r}")
            year = self.get(m, "year", int, f"{f}.year", None, "a year")
            span = (base.start_year, base.end_year)
            if (stat == "value") != (year is not None):
                raise self.bad(f, 'give year (the value in that year) or stat = "sum", "mean", '
                               '"max" or "min" (over years), not both')
            if year is not None and not span[0] <= year <= span[1]:
                raise self.bad(f"{f}.year", f"expected a year in {span[0]}-{span[1]}, got {year}")
            years = self.get(m, "years", list, f"{f}.years", None, "[first, last]")
            if years is not None and (len(years) != 2 or not span[0] <= years[0] <= years[1]
                                      <= span[1]):
                raise self.bad(f"{f}.years", f"expected [first, last] in {span[0]}-{span[1]}, "
                               f"got {years!r}")
            out[name] = Metric(col, stat, year, tuple(years) if years else None)
        return out

    def check_points(self, exp: Experiment) -> None:
        """Every grid point (or each bound of a sampled parameter) must make a valid scenario."""
        base = exp.base.to_dict()
        if exp.design.method == "grid":
            checks = [(None, pt) for pt in itertools.product(*(p.values for p in exp.parameters))]
        else:
            mid = tuple(_sample_value(p, math.sqrt(p.bounds[0] * p.bounds[1]) if p.log
                                      else sum(p.bounds) / 2) for p in exp.parameters)
            checks = [((i, j), mid[:i] + (_sample_value(p, b),) + mid[i + 1:])
                      for i, p in enumerate(exp.parameters) for j, b in enumerate(p.bounds)]
        for where, point in checks:
            try:
                Scenario.from_dict(apply(base, exp.parameters, point), source="<experiment>")
            except InputError as e:
                field = "parameter"
                if where is not None:
                    field = f"parameter[{where[0]}].bounds[{where[1]}]"
                else:  # the parameter setting the bad key, else the combination is bad
                    for i, (p, v) in enumerate(zip(exp.parameters, point)):
                        if any(_overlaps(k, e.field or "") for k in p.assignments(v)):
                            field = f"parameter[{i}].values[{p.values.index(v)}]"
                            break
                raise self.bad(field, f"{e.field}: {e.problem}" if e.field else e.problem) \
                    from None


def _overlaps(a: str, b: str) -> bool:
    """Whether dotted keys ``a`` and ``b`` are equal or one contains the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _sample_value(p: Parameter, x: float) -> Any:
    """A sampled parameter's value (rounded if integer)."""
    return round(x) if p.integer else float(x)


def _freeze(v: Any) -> Any:
    """Lists -> tuples, recursively (values must be hashable and comparable)."""
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return {k: _freeze(x) for k, x in v.items()}
    return v


_REQ = object()
