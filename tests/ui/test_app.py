"""The browser page without a browser: model/app.py rendered by solara.render inside AppLayout.

Clicks Step and Reset, changes controls, and checks that the model and the charts follow; that
the controls sit inside the schema with the baseline as default; that every browser session has
its own model; that the model imports without the visualisation packages; and that the front end
solara loads is installed locally (the page works offline).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import subprocess
import sys
from pathlib import Path

import ipyvuetify as v
import pytest
import solara
from solara.components.echarts import EchartsWidget

from model import app
from model.scenario import SECTORS, schema
from tests.conftest import ROOT


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[app.PolicyExplorer]:
    """Every PolicyExplorer the page builds, in order."""
    models: list[app.PolicyExplorer] = []
    init = app.PolicyExplorer.__init__

    @functools.wraps(init)  # keeps the signature Mesa inspects
    def recording(self: app.PolicyExplorer, **kwargs: object) -> None:
        init(self, **kwargs)
        models.append(self)

    monkeypatch.setattr(app.PolicyExplorer, "__init__", recording)
    return models


def render_page():
    return solara.render(solara.AppLayout(children=[app.Page()]), handle_error=False)


def button(rc, label: str) -> v.Btn:
    return rc.find(v.Btn, children=[label]).widget


def status(rc) -> str:
    return rc.find(v.Html, class_="cets-status").widget.children[0]


def settings(rc) -> str:
    return rc.find(v.Html, class_="cets-settings").widget.children[0]


def options(rc) -> list[dict]:
    return [w.option for w in rc.find(EchartsWidget).widgets]


def series_data(option: dict) -> list:
    return [s["data"] for s in option["series"]]


def test_step_and_reset_drive_the_model_and_the_charts(built: list) -> None:
    box, rc = render_page()
    assert len(built) == 1
    model = built[0]
    charts = options(rc)
    assert len(charts) == len(app.CHARTS) == 6
    titles = [c["title"]["text"] for c in charts]
    assert all(titles) and any("yuan/t" in t for t in titles) and any("Mt CO2" in t for t in titles)
    assert "Step 0 of" in status(rc)
    price_before = series_data(charts[0])

    for _ in range(3):
        button(rc, "Step").click()
    assert model.steps == 3 and len(model.history) == 3
    assert model.year == model.config.start_year + 2
    assert f"step 3 of {model.n_years}" in status(rc)
    assert "Time: 3.0" in [w.children[0] for w in rc.find(v.Html, tag="span").widgets
                           if w.children]
    charts = options(rc)
    assert series_data(charts[0]) != price_before
    assert [len(d) for d in series_data(charts[0])] == [3, 3]  # CEA and CCER prices, 3 years
    assert charts[0]["series"][0]["data"] == [round(h["cea_price"], 2) for h in model.history]
    assert len(charts[1]["series"][1]["data"]) == 3  # verified emissions
    assert "2023" in charts[5]["title"]["text"] or str(model.year) in charts[5]["title"]["text"]
    for c in charts:  # every chart names its units and has a legend
        assert c["title"]["text"] and c["legend"]

    # change controls, then Reset: a new model from the controls, charts back to empty
    rc.find(v.Slider, label="Offset limit").widget.v_model = 0.2
    rc.find(v.Slider, label="Seed").widget.v_model = 7
    rc.find(v.Select, label="chemicals: first covered year").widget.v_model = "2026"
    rc.find(v.Checkbox, label="Trading between firms").widget.v_model = False
    assert len(built) == 1  # nothing is rebuilt before Reset
    button(rc, "Reset").click()
    assert len(built) == 2
    new = built[1]
    assert new is not model and new.steps == 0 and not new.history
    sc = new.config
    assert sc.offsets.limit == 0.2 and sc.seed == 7 and sc.coverage.sectors["chemicals"] == 2026
    assert sc.market.trading is False
    assert "offset limit 20%" in settings(rc) and "seed 7" in settings(rc)
    assert "trading off" in settings(rc)
    assert "Step 0 of" in status(rc)
    assert all(d == [] for d in series_data(options(rc)[0]))

    button(rc, "Step").click()
    assert new.steps == 1 and model.steps == 3  # the old model is left alone
    assert "total_cost_with_trading" in new.history[0] or "resource_cost_with_trading" in \
        new.history[0]
    with_trade, alone = app.cost_paths(new)
    assert with_trade.size == alone.size == 1 and alone[0] >= with_trade[0] - 1e-9
    box.close()


def test_each_session_gets_its_own_model(built: list) -> None:
    box1, rc1 = render_page()
    box2, rc2 = render_page()
    assert len(built) == 2 and built[0] is not built[1]
    button(rc1, "Step").click()
    assert built[0].steps == 1 and built[1].steps == 0
    assert "step 1 of" in status(rc1) and "Step 0 of" in status(rc2)
    box1.close(), box2.close()


def test_controls_sit_in_the_schema_with_the_baseline_as_default() -> None:
    rules = schema()
    params = app.model_params()
    keys = {"benchmark_decline": "allocation.benchmark_decline",
            "linear_reduction_factor": "allocation.linear_reduction_factor",
            "offset_limit": "offsets.limit", "ccer_supply_scale": "offsets.supply_scale",
            "price_floor": "prices.floor", "price_ceiling": "prices.ceiling",
            "penalty_multiple": "compliance.penalty_multiple", "seed": "seed"}
    for name, key in keys.items():
        p, r = params[name], rules[key]
        assert p["type"] in ("SliderInt", "SliderFloat")
        assert r.lo is None or p["min"] >= r.lo, name
        assert r.hi is None or p["max"] <= r.hi, name
        assert p["min"] <= p["value"] <= p["max"], name
    assert params["seed"]["type"] == "SliderInt"  # a text box would pass a string
    assert set(SECTORS) <= set(params)
    for name in ("banking", "trading"):
        assert params[name]["type"] == "Checkbox"
    # the defaults rebuild the calibrated baseline
    base = app.baseline()
    scenario, notes = app.build_scenario({})
    assert notes == []
    assert scenario.replace(name=base.name).to_dict() == base.to_dict()
    # every control is an argument of the model the page builds (Mesa's Reset passes them)
    assert set(params) <= set(inspect.signature(app.PolicyExplorer.__init__).parameters)


def test_a_ceiling_below_the_floor_is_set_aside_with_a_note() -> None:
    scenario, notes = app.build_scenario({"price_floor": 100, "price_ceiling": 50})
    assert scenario.prices.floor == 100 and math.isinf(scenario.prices.ceiling)
    assert notes and "ceiling" in notes[0]
    scenario, notes = app.build_scenario({"price_floor": 20, "price_ceiling": 80})
    assert (scenario.prices.floor, scenario.prices.ceiling, notes) == (20, 80, [])


def test_the_model_imports_without_visualisation_packages() -> None:
    code = (
        "import sys\n"
        "for m in ('solara', 'reacton', 'ipyvuetify', 'ipywidgets', 'matplotlib', 'altair'):\n"
        "    sys.modules[m] = None  # importing any of them fails\n"
        "import model.model, model.cli, model.results, model.scenario\n"
        "model.cli.build_parser()\n"
        "assert 'model.app' not in sys.modules\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    sources = [p for p in (ROOT / "model").rglob("*.py") if p.name != "app.py"]
    assert not [p for p in sources if re.search(r"^\s*(from|import) model\.app\b|"
                                                r"^\s*from model import app\b",
                                                p.read_text(), re.MULTILINE)]


def test_the_front_end_is_installed_locally() -> None:
    """Every file the page loads from solara's CDN proxy is in solara-assets (offline)."""
    import ipyvuetify
    import ipywidgets
    import solara.settings
    from solara.server import settings

    assert int(ipyvuetify.__version__.split(".")[0]) < 3  # solara-vuetify-app, not vuetify3
    assert solara.settings.assets.proxy  # the server serves /_solara/cdn from the cache below
    cache = Path(settings.assets.proxy_cache_dir)
    assert cache == Path(sys.prefix) / "share" / "solara" / "cdn"
    pkg = Path(solara.__file__).parent
    template = (pkg / "server" / "templates" / "solara.html.j2").read_text()
    wanted = [m.group(1) for line in template.splitlines() if "vuetify3" not in line
              for m in re.finditer(r"\{\{cdn\}\}/([^\"'\s]+)", line)]
    wanted = [w.replace("{{ipywidget_major_version}}", ipywidgets.__version__.split(".")[0])
              for w in wanted]
    wanted.append(settings.assets.fontawesome_path.lstrip("/"))
    echarts = (pkg / "components" / "echarts.vue").read_text()
    version = re.search(r'const version = "([^"]+)"', echarts).group(1)
    wanted.append(f"echarts@{version}/dist/echarts.js")
    grid = (pkg / "widgets" / "vue" / "gridlayout.vue").read_text()
    wanted += re.findall(r"getCdn\(\)\}/([^`]+)`", grid)
    assert any("solara-vuetify-app@" in w for w in wanted) and len(wanted) >= 6
    missing = [w for w in wanted if not (cache / w).is_file()]
    assert not missing, f"not in {cache} (pip install solara-assets): {missing}"
