"""Tests of model/scenario.py: defaults, a full file, every class of bad input, paths, from_dict."""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import InputError
from model.scenario import (
    SECTIONS,
    SECTORS,
    AllocationConfig,
    BankingConfig,
    ComplianceConfig,
    CoverageConfig,
    FirmsConfig,
    GrowthConfig,
    MarketConfig,
    OffsetsConfig,
    PricesConfig,
    Scenario,
    load_scenario,
    schema,
)

HEADER = 'name = "t"\nseed = 1\nstart_year = 2021\nend_year = 2030\n'
MINIMAL = {"name": "t", "seed": 1, "start_year": 2021, "end_year": 2030}


def write(folder: Path, text: str, name: str = "scenario.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n", encoding="utf-8")
    return path


def assert_input_error(err: InputError, file: str | Path, field: str | None) -> None:
    """The error is one line naming the file and (if given) the field."""
    text = str(err)
    assert "\n" not in text
    assert err.file == str(file)
    assert text.startswith(f"{file}: ")
    assert err.field == field
    if field is not None:
        assert f"field '{field}'" in text


# --- defaults --------------------------------------------------------------------------------

def test_defaults_are_the_spec_values(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, HEADER))
    assert (s.name, s.seed, s.start_year, s.end_year, s.description) == ("t", 1, 2021, 2030, "")
    assert s.source == tmp_path / "scenario.toml"
    assert s.firms == FirmsConfig(table=None, mac=None)
    assert s.coverage.sectors == {"power": 2021, "steel": 2024, "cement": 2024, "aluminium": 2024}
    assert s.coverage.threshold == 26000.0
    a = s.allocation
    assert a.benchmark_decline == 0.01
    assert a.grandfather_until == {"steel": 2024, "cement": 2024, "aluminium": 2024}
    assert a.absolute_cap_from is None
    assert a.absolute_cap_sectors == ("steel", "cement", "aluminium")
    assert (a.linear_reduction_factor, a.auction_share, a.auction_share_growth) == (0.02, 0.0, 0.0)
    assert a.gas_never_short is True and a.coal_shortfall_cap is None
    assert s.offsets == OffsetsConfig(limit=0.05, supply=None, supply_scale=1.0,
                                      old_ccer_until=2023)
    c = s.compliance
    assert (c.penalty, c.penalty_multiple, c.reference_price, c.deduct_shortfall) == (
        None, 5.0, 50.0, True)
    assert s.prices.floor == 0.0 and s.prices.ceiling == math.inf
    assert s.market.trading is True
    b = s.banking
    assert (b.enabled, b.carry_over, b.base, b.base_new_sectors, b.sales_multiple) == (
        True, "china", 10000.0, 100000.0, 1.5)
    assert s.growth.output == {} and s.growth.intensity == {}


def test_default_constructed_sections_equal_loaded_defaults() -> None:
    s = Scenario.from_dict(MINIMAL)
    assert s == Scenario(name="t", seed=1, start_year=2021, end_year=2030)
    assert (s.coverage, s.allocation, s.offsets, s.compliance) == (
        CoverageConfig(), AllocationConfig(), OffsetsConfig(), ComplianceConfig())
    assert (s.prices, s.market, s.banking, s.growth) == (
        PricesConfig(), MarketConfig(), BankingConfig(), GrowthConfig())
    # Mutable defaults are not shared between instances.
    assert CoverageConfig().sectors is not CoverageConfig().sectors


def test_sectors_and_sections() -> None:
    assert len(SECTORS) == 9 and len(set(SECTORS)) == 9
    assert {"power", "steel", "cement", "aluminium", "flat_glass"} <= set(SECTORS)
    assert list(SECTIONS) == ["firms", "coverage", "allocation", "offsets", "compliance",
                              "prices", "market", "banking", "growth", "mac", "expectations",
                              "investment", "frictions"]


def test_schema_lists_every_key_with_its_rule() -> None:
    rows = schema()
    assert rows["allocation.auction_share"].lo == 0 and rows["allocation.auction_share"].hi == 1
    assert rows["prices.ceiling"].finite is False
    n_keys = 5 + sum(len(dataclasses.fields(cls)) for cls in SECTIONS.values())
    assert len(rows) == n_keys
    assert all(rule.doc for rule in rows.values())


def test_frozen_and_picklable() -> None:
    s = Scenario.from_dict(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(s)) == s


# --- a full file -----------------------------------------------------------------------------

FULL = """
name = "full"
seed = 42
start_year = 2024
end_year = 2035
description = "every key set"

[firms]
table = "data/firms.csv"
mac = "data/mac.csv"

[coverage]
threshold = 20000          # an integer where a number is expected

[coverage.sectors]
power = 2021
steel = 2025
chemicals = 2027

[allocation]
benchmark_decline = 0.02
absolute_cap_from = 2030
absolute_cap_sectors = "all"
linear_reduction_factor = 0.03
auction_share = 0.1
auction_share_growth = 0.02
gas_never_short = false
coal_shortfall_cap = 0.2

[allocation.grandfather_until]
steel = 2026

[offsets]
limit = 0.1
supply = "ccer.csv"
supply_scale = 2
old_ccer_until = 2024

[compliance]
penalty = 100
reference_price = 60.5
deduct_shortfall = false

[prices]
floor = 40
ceiling = 200.0

[market]
trading = false

[banking]
enabled = false
carry_over = "unlimited"
base = 0
base_new_sectors = 5e4
sales_multiple = 2

[growth.output]
power = 0.02
steel = -0.01

[growth.intensity]
cement = -0.005
"""


def test_full_file_is_read_and_round_trips(tmp_path: Path) -> None:
    for name in ("data/firms.csv", "data/mac.csv", "ccer.csv"):
        touch(tmp_path / name)
    s = load_scenario(write(tmp_path, FULL))
    assert (s.name, s.seed, s.start_year, s.end_year) == ("full", 42, 2024, 2035)
    assert s.firms.table == tmp_path / "data/firms.csv" and s.firms.mac == tmp_path / "data/mac.csv"
    assert s.coverage.sectors == {"power": 2021, "steel": 2025, "chemicals": 2027}
    assert s.coverage.threshold == 20000.0 and type(s.coverage.threshold) is float
    assert s.allocation.absolute_cap_sectors == SECTORS
    assert s.allocation.grandfather_until == {"steel": 2026}
    assert s.allocation.coal_shortfall_cap == 0.2 and s.allocation.gas_never_short is False
    assert s.offsets.supply == tmp_path / "ccer.csv" and s.offsets.supply_scale == 2.0
    assert s.compliance.penalty == 100.0 and s.compliance.penalty_multiple is None
    assert s.prices == PricesConfig(floor=40.0, ceiling=200.0)
    assert s.banking.carry_over == "unlimited" and s.banking.base_new_sectors == 50000.0
    assert s.growth.output == {"power": 0.02, "steel": -0.01}
    assert s.growth.intensity == {"cement": -0.005}

    d = s.to_dict()
    assert d["firms"] == {"table": str(tmp_path / "data/firms.csv"),
                          "mac": str(tmp_path / "data/mac.csv")}
    assert d["allocation"]["absolute_cap_sectors"] == list(SECTORS)
    assert "penalty_multiple" not in d["compliance"] and d["compliance"]["penalty"] == 100.0
    assert "source" not in d
    back = Scenario.from_dict(d, source=s.source)
    assert back == s and back.source == s.source
    assert Scenario.from_dict(d) == s  # absolute paths do not depend on base_dir


def test_default_round_trip_keeps_infinite_ceiling() -> None:
    s = Scenario.from_dict(MINIMAL)
    d = s.to_dict()
    assert d["prices"]["ceiling"] == math.inf
    assert "table" not in d["firms"] and "absolute_cap_from" not in d["allocation"]
    assert Scenario.from_dict(d) == s


def test_to_dict_is_a_copy(tmp_path: Path) -> None:
    s = Scenario.from_dict(MINIMAL)
    s.to_dict()["coverage"]["sectors"]["paper"] = 2030
    assert "paper" not in s.coverage.sectors


def test_penalty_multiple_alone_and_inf_ceiling_in_toml(tmp_path: Path) -> None:
    text = HEADER + "[compliance]\npenalty_multiple = 10\n[prices]\nceiling = inf\n"
    s = load_scenario(write(tmp_path, text))
    assert s.compliance.penalty is None and s.compliance.penalty_multiple == 10.0
    assert s.prices.ceiling == math.inf


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_share_accepted_exactly_in_unit_interval(x: float) -> None:
    d = {**MINIMAL, "allocation": {"auction_share": x}}
    if 0.0 <= x <= 1.0:
        assert Scenario.from_dict(d).allocation.auction_share == x
    else:
        with pytest.raises(InputError) as e:
            Scenario.from_dict(d)
        assert e.value.field == "allocation.auction_share"


# --- bad input -------------------------------------------------------------------------------

def _h(**changes: str) -> str:
    """HEADER with some top-level lines replaced (value "" drops the key)."""
    lines = {"name": '"t"', "seed": "1", "start_year": "2021", "end_year": "2030", **changes}
    return "".join(f"{k} = {v}\n" for k, v in lines.items() if v != "")


BAD = [
    # (toml text, field, fragment of the message)
    (_h() + "colour = 1\n", "colour", "unknown key 'colour'"),
    (_h() + "[alocation]\n", "alocation", "did you mean 'allocation'?"),
    (_h() + "[allocation]\nauction_shar = 0.1\n", "allocation.auction_shar",
     "did you mean 'auction_share'?"),
    (_h(seed="") + "[firms]\nseed = 1\n", "firms.seed", "before the first [section]"),
    (_h() + 'firms = "x"\n', "firms", "expected a table [firms], got the string 'x'"),
    (_h(seed=""), "seed", "missing required key; expected an integer >= 0"),
    (_h(name=""), "name", "missing required key"),
    (_h(name='""'), "name", "expected a non-empty string"),
    (_h(seed='"1"'), "seed", "expected an integer >= 0, got the string '1'"),
    (_h(seed="true"), "seed", "got true (a boolean)"),
    (_h(seed="-1"), "seed", "expected an integer >= 0, got -1"),
    (_h(start_year="2021.0"), "start_year", "expected an integer in [2000, 2100], got 2021"),
    (_h(start_year="221"), "start_year", "expected an integer in [2000, 2100], got 221"),
    (_h(end_year="2020"), "end_year", "expected a year >= start_year (2021), got 2020"),
    (_h() + "[allocation]\nauction_share = 1.5\n", "allocation.auction_share",
     "expected a number in [0, 1], got 1.5"),
    (_h() + "[allocation]\nauction_share = true\n", "allocation.auction_share",
     "got true (a boolean)"),
    (_h() + "[allocation]\nbenchmark_decline = -0.6\n", "allocation.benchmark_decline",
     "expected a number in [-0.5, 0.5], got -0.6"),
    (_h() + "[offsets]\nlimit = nan\n", "offsets.limit", "expected a number in [0, 1], got nan"),
    (_h() + "[coverage]\nthreshold = inf\n", "coverage.threshold",
     "expected a finite number >= 0, got inf"),
    (_h() + "[coverage]\nthreshold = -1\n", "coverage.threshold", "got -1"),
    (_h() + "[prices]\nfloor = nan\n", "prices.floor", "got nan"),
    (_h() + "[prices]\nceiling = nan\n", "prices.ceiling", "got nan"),
    (_h() + "[prices]\nfloor = 100\nceiling = 50\n", "prices.ceiling",
     "expected a number > prices.floor (100), got 50"),
    (_h() + "[prices]\nfloor = 50\nceiling = 50\n", "prices.ceiling", "> prices.floor (50)"),
    (_h() + "[market]\ntrading = 1\n", "market.trading", "expected true or false, got 1"),
    (_h() + '[banking]\ncarry_over = "sometimes"\n', "banking.carry_over",
     "expected one of 'china', 'unlimited', 'none', got the string 'sometimes'"),
    (_h() + "[banking]\nbase = -5\n", "banking.base", "expected a finite number >= 0"),
    (_h() + "[compliance]\npenalty = 100\npenalty_multiple = 5\n", "compliance.penalty",
     "not both"),
    (_h() + "[compliance]\npenalty = 0\n", "compliance.penalty", "expected a finite number > 0"),
    (_h() + "[compliance]\npenalty_multiple = 0.5\n", "compliance.penalty_multiple",
     "expected a finite number >= 1, got 0.5"),
    (_h() + "[compliance]\nreference_price = 0\n", "compliance.reference_price", "> 0"),
    (_h() + "[coverage.sectors]\nglass = 2025\n", "coverage.sectors.glass",
     "unknown sector 'glass' (did you mean 'flat_glass'?)"),
    (_h() + "[coverage.sectors]\npower = \"2021\"\n", "coverage.sectors.power",
     "expected an integer in [2000, 2100], got the string '2021'"),
    (_h() + "[coverage]\nsectors = [\"power\"]\n", "coverage.sectors",
     "expected a table of sector = value, got an array"),
    (_h() + "[allocation.grandfather_until]\nsteal = 2024\n", "allocation.grandfather_until.steal",
     "did you mean 'steel'?"),
    (_h() + "[growth.output]\nshipping = 0.01\n", "growth.output.shipping", "unknown sector"),
    (_h() + "[growth.intensity]\nbanana = 0.01\n", "growth.intensity.banana", "unknown sector"),
    (_h() + "[growth.output]\nsteel = 0.9\n", "growth.output.steel",
     "expected a number in [-0.5, 0.5], got 0.9"),
    (_h() + "[growth]\noutput = 0.03\n", "growth.output", "expected a table of sector = value"),
    (_h() + '[allocation]\nabsolute_cap_sectors = ["steel", "glass"]\n',
     "allocation.absolute_cap_sectors", "unknown sector 'glass'"),
    (_h() + '[allocation]\nabsolute_cap_sectors = "steel"\n', "allocation.absolute_cap_sectors",
     "expected an array of sector names, or \"all\", got the string 'steel'"),
    (_h() + '[allocation]\nabsolute_cap_sectors = ["steel", "steel"]\n',
     "allocation.absolute_cap_sectors", "listed twice"),
    (_h() + "[allocation]\nabsolute_cap_sectors = [1]\n", "allocation.absolute_cap_sectors",
     "expected an array of sector names"),
    (_h() + "[allocation]\nabsolute_cap_from = 2030.5\n", "allocation.absolute_cap_from",
     "expected an integer"),
    (_h() + "[allocation]\ncoal_shortfall_cap = -0.1\n", "allocation.coal_shortfall_cap", ">= 0"),
    (_h() + '[firms]\nmac = "mac.csv"\n', "firms.mac", "needs firms.table"),
    (_h() + '[firms]\ntable = "missing.csv"\n', "firms.table", "file not found"),
    (_h() + '[firms]\ntable = ""\n', "firms.table", "expected a file path"),
    (_h() + "[firms]\ntable = 3\n", "firms.table", "expected a file path (string), got 3"),
    (_h() + '[offsets]\nsupply = "nope/ccer.csv"\n', "offsets.supply", "file not found"),
    (_h() + '[offsets]\nsupply = "."\n', "offsets.supply", "file not found"),  # a folder
    (_h(description="2024-01-01"), "description", "expected a string, got date"),
]


@pytest.mark.parametrize(("text", "field", "fragment"), BAD,
                         ids=[f"{i}:{case[1]}" for i, case in enumerate(BAD)])
def test_bad_input_names_file_and_field(tmp_path: Path, text: str, field: str,
                                        fragment: str) -> None:
    touch(tmp_path / "mac.csv")
    path = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert_input_error(e.value, path, field)
    assert fragment in e.value.problem


def test_missing_file_is_reported_with_the_resolved_path(tmp_path: Path) -> None:
    path = write(tmp_path / "sc", _h() + '[firms]\ntable = "../data/firms.csv"\n')
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert f"file not found: {tmp_path / 'data' / 'firms.csv'} " in e.value.problem
    assert str(tmp_path / "sc") in e.value.problem  # says what relative paths resolve against


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "t"\nseed = 1\nstart_year = \n')
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert_input_error(e.value, path, None)
    assert e.value.line == 3
    assert "line 3" in str(e.value) and "invalid TOML" in str(e.value)


def test_duplicate_toml_key_is_a_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, _h() + "seed = 2\n")
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert e.value.line == 5 and e.value.file == str(path)


def test_missing_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert_input_error(e.value, path, None)
    assert "not found" in str(e.value)


def test_folder_and_non_utf8_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        load_scenario(tmp_path)
    assert_input_error(e.value, tmp_path, None)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert_input_error(e.value, path, None)
    assert "UTF-8" in str(e.value)


# --- paths -----------------------------------------------------------------------------------

def test_relative_paths_resolve_against_the_scenario_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "sc" / "data" / "firms.csv")
    touch(tmp_path / "shared" / "mac.csv")
    ccer = touch(tmp_path / "elsewhere" / "ccer.csv")
    text = _h() + ('[firms]\ntable = "data/firms.csv"\nmac = "../shared/mac.csv"\n'
                   f'[offsets]\nsupply = "{ccer}"\n')
    path = write(tmp_path / "sc", text)
    monkeypatch.chdir(tmp_path / "elsewhere")  # the working folder must not matter
    s = load_scenario(Path("..") / "sc" / "scenario.toml")
    assert s.firms.table == tmp_path / "sc" / "data" / "firms.csv"
    assert s.firms.mac == tmp_path / "shared" / "mac.csv"  # normalised, no ".."
    assert s.offsets.supply == ccer
    assert s.source == path


# --- from_dict and replace -------------------------------------------------------------------

def test_from_dict_resolves_against_base_dir_or_cwd(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "a" / "firms.csv")
    d = {**MINIMAL, "firms": {"table": "firms.csv"}}
    s = Scenario.from_dict(d, base_dir=tmp_path / "a")
    assert s.firms.table == tmp_path / "a" / "firms.csv" and s.source is None
    monkeypatch.chdir(tmp_path / "a")
    assert Scenario.from_dict(d).firms.table == tmp_path / "a" / "firms.csv"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as e:
        Scenario.from_dict(d)
    assert_input_error(e.value, "<dict>", "firms.table")
    # A Path source is stored and its folder is the default base_dir.
    s = Scenario.from_dict(d, source=tmp_path / "a" / "x.toml")
    assert s.source == tmp_path / "a" / "x.toml" and s.firms.table == tmp_path / "a" / "firms.csv"


def test_from_dict_errors_name_the_source_label() -> None:
    with pytest.raises(InputError) as e:
        Scenario.from_dict({**MINIMAL, "banking": {"base": "lots"}}, source="sweep row 3")
    assert_input_error(e.value, "sweep row 3", "banking.base")
    with pytest.raises(InputError) as e:
        Scenario.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]
    assert_input_error(e.value, "<dict>", None)
    assert "expected a table of settings, got an array" in str(e.value)


def test_from_dict_accepts_python_values() -> None:
    d = {**MINIMAL, "compliance": {"penalty": None, "penalty_multiple": None},
         "allocation": {"absolute_cap_sectors": ("power",), "coal_shortfall_cap": None}}
    s = Scenario.from_dict(d)
    assert s.compliance.penalty is None and s.compliance.penalty_multiple == 5.0  # None = left out
    assert s.allocation.absolute_cap_sectors == ("power",)
    with pytest.raises(InputError) as e:
        Scenario.from_dict({**MINIMAL, "market": {"trading": None}})
    assert_input_error(e.value, "<dict>", "market.trading")


def test_from_dict_copies_its_input() -> None:
    growth = {"steel": 0.01}
    d = {**MINIMAL, "growth": {"output": growth}}
    s = Scenario.from_dict(d)
    growth["steel"] = 0.4
    assert s.growth.output == {"steel": 0.01}
    assert d == {**MINIMAL, "growth": {"output": {"steel": 0.4}}}  # input not changed


def test_replace_validates_and_merges(tmp_path: Path) -> None:
    s = Scenario.from_dict({**MINIMAL, "allocation": {"auction_share": 0.1}})
    v = s.replace(seed=7, allocation={"auction_share_growth": 0.05})
    assert v.seed == 7 and v.allocation.auction_share == 0.1
    assert v.allocation.auction_share_growth == 0.05
    assert v.replace(compliance={"penalty": 80}).compliance == ComplianceConfig(
        penalty=80.0, penalty_multiple=None)
    back = v.replace(compliance={"penalty": 80}).replace(compliance={"penalty_multiple": 7})
    assert (back.compliance.penalty, back.compliance.penalty_multiple) == (None, 7.0)
    assert s.replace(prices=PricesConfig(floor=10.0)).prices.floor == 10.0
    with pytest.raises(InputError) as e:
        s.replace(allocation={"auction_share": 2})
    assert_input_error(e.value, "<replace>", "allocation.auction_share")
    with pytest.raises(InputError) as e:
        s.replace(colour=1)
    assert_input_error(e.value, "<replace>", "colour")
    assert s.allocation.auction_share_growth == 0.0  # the original is unchanged


def test_source_does_not_affect_equality(tmp_path: Path) -> None:
    a = load_scenario(write(tmp_path, HEADER, "a.toml"))
    b = load_scenario(write(tmp_path, HEADER, "b.toml"))
    assert a == b and a.source != b.source


def test_base_scenario_is_merged_table_by_table(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "firms.csv").write_text("firm_id,sector,emissions\na,power,100000\n")
    (tmp_path / "base.toml").write_text(
        'name = "b"\nseed = 1\nstart_year = 2021\nend_year = 2030\n'
        '[firms]\ntable = "firms.csv"\n'
        '[coverage]\nsectors = { power = 2021, steel = 2024 }\n[offsets]\nlimit = 0.05\n')
    (tmp_path / "sub" / "v.toml").write_text(
        'base = "../base.toml"\nname = "v"\n[coverage]\nsectors = { paper = 2027 }\n')
    s = load_scenario(tmp_path / "sub" / "v.toml")
    assert s.name == "v" and s.seed == 1 and s.offsets.limit == 0.05
    assert s.coverage.sectors == {"power": 2021, "steel": 2024, "paper": 2027}
    assert s.firms.table == (tmp_path / "firms.csv").resolve()
    (tmp_path / "bad.toml").write_text('base = "nope.toml"\nname = "x"\n')
    with pytest.raises(InputError, match="base"):
        load_scenario(tmp_path / "bad.toml")


def test_every_shipped_scenario_loads() -> None:
    folder = Path(__file__).resolve().parents[1] / "experiments" / "scenarios"
    names = {p.stem for p in folder.glob("*.toml")}
    assert {"baseline", "fast_expansion", "strict_benchmarks", "early_cap",
            "offset_limit_0", "offset_limit_10", "floor_and_reserve"} <= names
    for p in folder.glob("*.toml"):
        assert load_scenario(p).name == p.stem
