"""Experiments and sweeps: validation, engines, failures, interruption and resume, sensitivity."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pandas as pd
import pytest

from model.cli import main
from model.errors import InputError
from model.experiment import load_experiment
from model.sweep import execute, load_results, sweep
from tests.conftest import ROOT, write_scenario, write_tables

TINY = """name = "tiny"
base = "scenario.toml"
seeds = 2
outputs = ["cea_price", "ccer_price", "emissions", "total_cost", "covered_firms", "limit_binds"]
[[parameter]]
key = "allocation.benchmark_decline"
values = [0.0, 0.05]
[[parameter]]
key = "offsets.limit"
range = [0.0, 0.1]
num = 2
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A 2 x 2 x 2-seed experiment on the 40-firm tables (8 fast runs)."""
    write_tables(tmp_path)
    write_scenario(tmp_path, "[allocation]\nabsolute_cap_from = 2026\n", years=(2025, 2028))
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_shipped_experiments_load():
    sizes = {}
    for path in sorted((ROOT / "experiments").glob("*.toml")):
        exp = load_experiment(path)
        sizes[exp.name] = len(exp.runs())
        assert exp.name == path.stem
    assert sizes["coverage_x_stringency"] == 72 and sizes["offset_limit"] == 80
    assert sizes["trading_gains"] == 24
    sobol = load_experiment(ROOT / "experiments" / "sobol.toml")
    assert sizes["sobol"] == sobol.design.n * (len(sobol.parameters) + 2)


def test_a_finished_run_frees_its_arrays_at_once(tiny: Path, monkeypatch):
    """A sweep run's model is released when its rows are read, without waiting for the cyclic
    garbage collector (Mesa keeps cycles through a model): its registry and inputs are freed."""
    import model.model as model_module

    made = []

    class Recorded(model_module.CarbonMarket):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append((weakref.ref(self.ledger), weakref.ref(self.expectations)))

    monkeypatch.setattr(model_module, "CarbonMarket", Recorded)
    run = load_experiment(tiny).runs()[0]
    gc.disable()
    try:
        status, _, frame = execute(run, ("cea_price",), False)
        assert status == "ok" and len(frame) == 4
        assert made and all(ref() is None for ref in made[0])  # freed now, not by gc
        m = Recorded(model_module.Scenario.from_dict(run.scenario, source="x"), agents=False)
        ledger = weakref.ref(m.ledger)
        del m
        assert ledger() is not None  # (what the release avoids: Mesa's cycles keep it)
    finally:
        gc.enable()


def test_ctrl_c_inside_a_kernel_interrupts_the_sweep(tiny: Path, monkeypatch):
    """Ctrl-C while compiled code runs reaches Python as a SystemError caused by the
    KeyboardInterrupt, wrapped again by each compiled call it leaves: it interrupts the sweep
    instead of being recorded as a failed run."""
    import model.model as model_module

    def interrupted(self, depth=3):
        try:
            if depth == 0:
                raise KeyboardInterrupt
            interrupted(self, depth - 1)
        except (KeyboardInterrupt, SystemError) as e:
            raise SystemError("CPUDispatcher(f) returned a result with an exception set") from e

    run = load_experiment(tiny).runs()[0]
    monkeypatch.setattr(model_module.CarbonMarket, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute(run, ("cea_price",), False)

    def broken(self):
        raise SystemError("a real bug")

    monkeypatch.setattr(model_module.CarbonMarket, "run", broken)
    assert execute(run, ("cea_price",), False) == ("error", run.run, "SystemError: a real bug")


def test_runs_and_columns(tiny: Path):
    exp = load_experiment(tiny)
    runs = exp.runs()
    assert [(r.point, r.seed) for r in runs[:3]] == [(0, 7), (0, 8), (1, 7)]
    assert runs[-1].params == (("allocation.benchmark_decline", 0.05), ("offsets.limit", 0.1))
    assert runs[-1].scenario["offsets"]["limit"] == 0.1
    assert runs[-1].scenario["firms"]["table"] == str(tiny.parent / "firms.csv")


@pytest.mark.parametrize("body, field, words", [
    ('name = "x"\nbase = "scenario.toml"\nsedes = 2\n', "sedes", "did you mean 'seeds'"),
    (('name = "x"\nbase = "scenario.toml"\n[[parameter]]\nkey = "allocation.benchmark_decln"\n'
     'values = [0.1]\n'), "parameter[0].key", "allocation.benchmark_decline"),
    (('name = "x"\nbase = "scenario.toml"\n[[parameter]]\nkey = "offsets.limit"\n'
     'values = [0.1, 1.5]\n'), "parameter[0].values[1]", "offsets.limit"),
    (('name = "x"\nbase = "scenario.toml"\n[design]\nmethod = "sobol"\nn = 100\n'
     '[[parameter]]\nkey = "offsets.limit"\nbounds = [0, 0.1]\n'), "design.n", "power of 2"),
    (('name = "x"\nbase = "scenario.toml"\noutputs = ["cea_price"]\n[design]\nmethod = "morris"\n'
     '[metrics]\ne = { column = "emissions", stat = "sum" }\n[[parameter]]\n'
     'key = "offsets.limit"\nbounds = [0, 0.1]\n'), "metrics.e.column", "not among the outputs"),
    ('name = "x"\nbase = "missing.toml"\n', "base", "not found"),
])
def test_bad_experiments_name_file_and_field(tiny: Path, body: str, field: str, words: str):
    path = tiny.parent / "bad.toml"
    path.write_text(body)
    with pytest.raises(InputError) as e:
        load_experiment(path)
    assert e.value.field == field and str(path) in str(e.value) and words in str(e.value)


def test_engines_give_identical_tables(tiny: Path, tmp_path: Path):
    exp = load_experiment(tiny)
    tables = {}
    for engine in ("serial", "processes", "dask"):
        s = sweep(exp, tmp_path / engine, engine=engine, workers=2, progress=False)
        assert (s.computed, s.failures, s.missing, s.engine) == (8, [], 0, engine)
        tables[engine] = load_results(tmp_path / engine)
        manifest = json.loads((tmp_path / engine / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["engine"] == engine
        assert manifest["sha256"] == exp.sha256 and manifest["seeds"] == [7, 8]
    t = tables["serial"]
    assert len(t) == 8 * 4 and list(t.columns[:5]) == [
        "run", "point", "seed", "allocation.benchmark_decline", "offsets.limit"]
    assert t["cea_price"].gt(0).any() and t["limit_binds"].dtype == bool
    pd.testing.assert_frame_equal(t, tables["processes"])
    pd.testing.assert_frame_equal(t, tables["dask"])
    assert not list((tmp_path / "serial" / "parts").iterdir())  # combined and removed


def test_failing_run_is_recorded_and_the_others_finish(tiny: Path, tmp_path: Path, capsys):
    bad = tiny.parent / "bad_firms.csv"
    pd.read_csv(tiny.parent / "firms.csv").assign(emissions=-1.0).to_csv(bad, index=False)
    path = tiny.parent / "fails.toml"
    path.write_text(TINY + '[[parameter]]\nkey = "firms.table"\nvalues = ["firms.csv", '
                    '"bad_firms.csv"]\nlabels = ["good", "bad"]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--engine", "serial", "-q"]) == 1
    text = capsys.readouterr().out
    assert "8 failed" in text and "firms.table=bad" in text and "InputError" in text
    t = load_results(out)
    assert t["run"].nunique() == 8 and set(t["firms.table"]) == {"good"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failed"] == 8 and manifest["completed"] == 8
    assert all("negative" in f["error"] or "emissions" in f["error"]
               for f in manifest["failures"])
    # resuming recomputes nothing: failures are results too (unless --retry-failed)
    s = sweep(load_experiment(path), out, resume=True, progress=False)
    assert (s.resumed, s.computed, len(s.failures)) == (16, 0, 8)
    assert load_results(out).equals(t)


def test_existing_sweep_needs_resume_and_the_same_design(tiny: Path, tmp_path: Path):
    exp = load_experiment(tiny)
    sweep(exp, tmp_path / "out", engine="serial", progress=False)
    with pytest.raises(InputError, match="--resume"):
        sweep(exp, tmp_path / "out", progress=False)
    tiny.write_text(TINY.replace("[0.0, 0.05]", "[0.0, 0.04]"))
    with pytest.raises(InputError, match="another design"):
        sweep(load_experiment(tiny), tmp_path / "out", resume=True, progress=False)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for_parts(out: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        done = len(list((out / "parts").glob("r*.parquet"))) if (out / "parts").exists() else 0
        if done >= n:
            return done
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the sweep did not start")


def test_resume_after_ctrl_c_and_kill_9(tmp_path: Path):
    """Interrupt with SIGINT (serial), then SIGKILL (process pool), resume; compare.

    80 runs of 20 years: enough that neither sweep can finish between the test seeing a new
    part and interrupting it (a national run takes a few tens of ms)."""
    path = tmp_path / "resume.toml"
    path.write_text(f'name = "resume"\nbase = "{ROOT / "experiments/scenarios/baseline.toml"}"\n'
                    'seeds = [1, 2, 3, 4, 5, 6, 7, 8]\nyears = [2021, 2040]\n'
                    'outputs = ["cea_price", "emissions", "total_cost"]\n'
                    '[design]\nmethod = "grid"\n[[parameter]]\nkey = "offsets.limit"\n'
                    'values = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1]\n')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "model", "sweep", str(path), "--out", str(out), "-q"]
    env = dict(os.environ)
    # (Ctrl-C handled as usual even if this test runs with SIGINT ignored, as a background job
    # of a non-interactive shell does: the child would inherit it)
    proc = subprocess.Popen(cmd + ["--engine", "serial"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_parts(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err, err
    first = len(list((out / "parts").glob("r*.parquet")))
    assert 1 <= first < 80
    assert json.loads((out / "manifest.json").read_text())["status"] == "incomplete"
    proc = subprocess.Popen(cmd + ["--resume", "--engine", "processes", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_parts(out, first + 1, proc)
    workers = _children(proc.pid)
    proc.kill()  # kill -9: no cleanup in the parent
    proc.communicate()
    t0 = time.monotonic()  # orphaned pool processes notice and exit
    while any(Path(f"/proc/{w}").exists() and "zombie" not in _status(w) for w in workers):
        assert time.monotonic() - t0 < 10, "pool processes outlived the killed sweep"
        time.sleep(0.1)
    second = len(list((out / "parts").glob("r*.parquet")))
    assert first < second <= 80
    s = sweep(load_experiment(path), out, resume=True, engine="serial", progress=False)
    assert (s.resumed, s.computed, s.failures, s.missing) == (second, 80 - second, [], 0)
    resumed = load_results(out)
    ref = sweep(load_experiment(path), tmp_path / "ref", engine="serial", progress=False)
    assert ref.computed == 80
    pd.testing.assert_frame_equal(resumed, load_results(tmp_path / "ref"))
    assert resumed.groupby("run").size().eq(20).all() and resumed["run"].nunique() == 80


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_sobol_and_morris_write_indices(tiny: Path, tmp_path: Path):
    for method, extra in (("sobol", "n = 8\nresamples = 50\n"),
                          ("morris", "trajectories = 4\nresamples = 50\n")):
        body = TINY.replace("seeds = 2", "seeds = 1").split("[[parameter]]")[0]
        body += (f"[design]\nmethod = \"{method}\"\nseed = 3\n{extra}"
                 "[metrics]\nprice = { column = \"cea_price\", year = 2028 }\n"
                 "cost = { column = \"total_cost\", stat = \"sum\" }\n"
                 "[[parameter]]\nkey = \"allocation.benchmark_decline\"\nbounds = [0.0, 0.05]\n"
                 "[[parameter]]\nkey = \"mac.cost_scale.power\"\nbounds = [0.5, 2.0]\nlog = true\n")
        path = tiny.parent / f"{method}.toml"
        path.write_text(body)
        exp = load_experiment(path)
        s = sweep(exp, tmp_path / method, engine="serial", progress=False)
        idx = pd.read_csv(tmp_path / method / "indices.csv")
        assert len(idx) == 4 and set(idx["metric"]) == {"price", "cost"}
        if method == "sobol":
            assert s.computed == 8 * 4 and "largest change" in s.note
            assert {"S1", "S1_conf", "ST", "ST_conf"} <= set(idx.columns)
            assert (tmp_path / method / "convergence.csv").exists()
        else:
            assert s.computed == 4 * 3 and idx["mu_star"].ge(0).all()
        scales = load_results(tmp_path / method)["mac.cost_scale.power"]
        assert scales.between(0.5, 2.0).all()
