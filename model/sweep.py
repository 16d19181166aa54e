"""Sweeps: run every run of an experiment on one of three engines, resumably.

``sweep(load_experiment(path), out)`` writes into ``out``:

* ``results.parquet`` — one tidy table, one row per run x year: ``run, point, seed``, one column
  per parameter, ``year`` and the kept outputs (prices yuan/t, quantities t CO2, costs yuan);
* ``manifest.json`` — experiment file and its SHA-256, a hash of the design, package and library
  versions, seeds, engines and workers used, counts, failures;
* ``indices.csv`` (and ``convergence.csv`` for Sobol) for a sensitivity design.

Each run's rows are written when the run finishes, as ``parts/rNNNNNN.parquet`` (a failed run as
``parts/rNNNNNN.error.json`` with its error message), atomically: a temporary file renamed into
place. An interrupted sweep (Ctrl-C, kill -9, a lost worker) therefore resumes with
``resume=True``, computing only the runs without a part; when every run has one, the parts are
combined into ``results.parquet`` and removed. A run depends only on its scenario (with its
seed), so every engine gives the same table.

Engines: ``serial`` (this process), ``processes`` (a pool of spawned local processes, default
one per core) and ``dask`` (a ``distributed`` LocalCluster, or an existing cluster given by its
scheduler address; its workers need cets installed, the same version).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model import __version__
from model.errors import InputError, interruption
from model.experiment import Experiment, Run
from model.scenario import Scenario

ENGINES = ("auto", "serial", "processes", "dask")
INT_OUTPUTS = ("covered_firms",)
BOOL_OUTPUTS = ("limit_binds",)
Outcome = tuple[str, int, Any]
"""``("ok", run, DataFrame)``, ``("error", run, message)`` or ``("lost", run, message)``."""


# ------------------------------------------------------------------------------ one run
_TRIM_THRESHOLD = 128 << 20  # bytes of free memory glibc keeps at the top of the heap
_MMAP_THRESHOLD = 32 << 20  # blocks up to this size come from the heap (glibc's largest)
_allocator_set = False


def _keep_freed_memory() -> None:
    """Let glibc's allocator keep up to 128 MB of freed memory for this process's next runs.

    By default glibc gives the top of its heap back to the system as soon as more than 128 kB
    of it is free, and maps blocks of its own for large arrays, unmapped again when freed. A run
    frees its yearly arrays (~50 kB each) and its whole ~30 MB at the end, so the heap shrinks
    and grows back again and again: every page taken anew costs a page fault (~2,700 per
    national run, ~10 % of its time). Arrays up to 32 MB (the projection's stacks of ~3 MB) are
    taken from the heap too, which fixing the first setting would otherwise leave to the first
    threshold (128 kB). Set once per process that runs a sweep's runs (glibc on Linux; elsewhere
    nothing is done). Results do not depend on it.
    """
    global _allocator_set
    if _allocator_set:
        return
    _allocator_set = True
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            libc.mallopt(-1, _TRIM_THRESHOLD)  # M_TRIM_THRESHOLD (malloc.h)
            libc.mallopt(-3, _MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        except (AttributeError, OSError):  # (not glibc)
            pass


def _release(model: object) -> None:
    """Free a finished run's arrays now (the model is dropped after its rows are read).

    Mesa's event machinery holds reference cycles through a model (bound methods of it in its
    event list), which only the cyclic garbage collector frees, after dozens of runs. Until
    then each run's arrays (~30 MB for a national 2021-2060 run) stay allocated, and every run
    takes fresh memory from the system: ~3,000 page faults per run, about a tenth of its time.
    Dropping the model's attributes frees them at once, for the next run to reuse.
    """
    vars(model).clear()


def execute(run: Run, outputs: tuple[str, ...], counterfactual: bool,
            parts: Path | None = None) -> Outcome:
    """Run one model run (in any process); a run that raises returns its error message
    (Ctrl-C interrupts it: a KeyboardInterrupt raised within compiled code reaches Python as
    a chain of SystemErrors caused by it, :func:`model.errors.interruption`, and is raised again
    as such).

    Args:
        run, outputs, counterfactual: The run, the outputs kept, and whether to compute the
            cost without trading.
        parts: Write the run's rows there (``rNNNNNN.parquet``, atomically) instead of
            returning them: the workers of a local process pool save their own parts, which
            leaves the sweep's process only the bookkeeping.

    Returns:
        ``("ok", run.run, frame)`` with one row per year (``run``, ``year`` and the outputs; an
        output the run does not produce is NaN; None if written to ``parts``), or
        ``("error", run.run, "Type: message")``.
    """
    from model.model import CarbonMarket

    _keep_freed_memory()
    try:
        scenario = Scenario.from_dict(run.scenario, source=f"<run {run.run}>")
        model = CarbonMarket(scenario, agents=False, record_firms=False,
                             counterfactual=counterfactual)
        model.run()
        rows = model.history  # one dict per year (the same keys every year)
        _release(model)
        frame = {"run": np.full(len(rows), run.run, dtype=np.int64),
                 "year": np.array([r["year"] for r in rows], dtype=np.int64)}
        for c in outputs:
            dtype = np.int64 if c in INT_OUTPUTS else bool if c in BOOL_OUTPUTS else np.float64
            frame[c] = (np.array([r[c] for r in rows], dtype=dtype) if rows and c in rows[0]
                        else pd.Series(np.nan, index=range(len(rows))).to_numpy(dtype=dtype))
        table = pd.DataFrame(frame)
    except Exception as e:  # noqa: BLE001 - a failing run is recorded and the sweep goes on
        stop = interruption(e)  # Ctrl-C inside compiled code
        if stop is not None:
            raise stop from None
        return "error", run.run, f"{type(e).__name__}: {e}"
    if parts is None:
        return "ok", run.run, table
    _write_part(parts, run.run, table)  # (a failed write is no failed run: the run is lost)
    return "ok", run.run, None


def _write_part(parts: Path, run: int, table: pd.DataFrame) -> None:
    """Save a finished run's rows as ``parts/rNNNNNN.parquet``, atomically."""
    _atomic(parts / f"r{run:06d}.parquet",
            lambda p: pq.write_table(pa.Table.from_pandas(table, preserve_index=False), p))


# ------------------------------------------------------------------------------ engines
def _serial(runs: list[Run], outputs: tuple[str, ...], cf_: bool, **_: Any) -> Iterator[Outcome]:
    for r in runs:
        yield execute(r, outputs, cf_)


def _worker_init(parent: int) -> None:
    """In each pool process: leave Ctrl-C to the parent; exit when the parent is gone.

    A parent killed with SIGKILL cannot shut its pool down, and an orphaned pool process would
    otherwise wait forever; a daemon thread checks the parent's pid every second.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="cets-parent-watch", daemon=True).start()


def _processes(runs: list[Run], outputs: tuple[str, ...], cf_: bool, workers: int,
               parts: Path | None = None, **_: Any) -> Iterator[Outcome]:
    ctx = multiprocessing.get_context("spawn")  # as Mesa's batch_run; no fork of threads
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                  initargs=(os.getpid(),))
    try:
        # (the workers save their runs' parts themselves)
        futures = {pool.submit(execute, r, outputs, cf_, parts): r.run for r in runs}
        for fut in cf.as_completed(futures):
            try:
                yield fut.result()
            except Exception as e:  # noqa: BLE001 - a dead worker (BrokenProcessPool): run missing
                yield "lost", futures[fut], f"{type(e).__name__}: {e}"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(runs: list[Run], outputs: tuple[str, ...], cf_: bool, workers: int,
          scheduler: str | None = None, **_: Any) -> Iterator[Outcome]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as e:
            raise InputError(None, f"cannot reach the Dask scheduler {scheduler}: {e}") from None
    try:
        versions = set(client.run(_version).values())
        if versions != {__version__}:
            raise InputError(None, f"the Dask workers run cets {sorted(versions)}, this client "
                             f"{__version__}: install the same version on every worker")
        tag = uuid.uuid4().hex[:8]
        futures = client.map(execute, runs, outputs=outputs, counterfactual=cf_,
                             key=[f"cets-{tag}-{r.run}" for r in runs], pure=False)
        ids = {f.key: r.run for f, r in zip(futures, runs)}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as e:  # noqa: BLE001 - KilledWorker, lost connection: run missing
                yield "lost", ids[fut.key], f"{type(e).__name__}: {e}"
            fut.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _version() -> str:
    import model
    return model.__version__


# ------------------------------------------------------------------------------ the sweep
@dataclasses.dataclass
class Summary:
    """What a sweep did.

    Attributes:
        name: Experiment name.
        out: Output folder.
        runs: Runs of the experiment.
        resumed: Runs already done before this call.
        computed: Runs computed by this call (including failed ones).
        failures: ``{"run", "seed", "params", "error"}`` of every failed run.
        missing: Runs still without a result (lost workers, interruption).
        elapsed: Wall time of this call's computation, s.
        engine: Engine used.
        workers: Worker processes used.
        note: Extra line (e.g. the stability of the Sobol indices).
    """

    name: str
    out: Path
    runs: int
    resumed: int
    computed: int
    failures: list[dict[str, Any]]
    missing: int
    elapsed: float
    engine: str
    workers: int
    note: str = ""

    @property
    def rate(self) -> float:
        """Runs per second of this call (0 if none were computed)."""
        return self.computed / self.elapsed if self.elapsed > 0 and self.computed else 0.0

    def text(self) -> str:
        """A few lines for the terminal."""
        head = (f"{self.name}: {self.runs} runs ({self.resumed} already done, {self.computed} "
                f"computed, {len(self.failures)} failed, {self.missing} missing) in "
                f"{self.elapsed:.1f} s on {self.engine} x {self.workers}: {self.rate:.2f} runs/s, "
                f"{self.rate / max(self.workers, 1):.2f} runs/s per worker -> {self.out}")
        lines = [head]
        for f in self.failures:
            params = ", ".join(f"{k}={v}" for k, v in f["params"].items())
            lines.append(f"  failed: run {f['run']} (seed {f['seed']}; {params}): {f['error']}")
        if self.missing:
            lines.append(f"  {self.missing} runs missing: run again with --resume")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def sweep(exp: Experiment, out: str | Path, *, engine: str = "auto", workers: int | None = None,
          scheduler: str | None = None, resume: bool = False, retry_failed: bool = False,
          progress: bool = True) -> Summary:
    """Run the experiment's missing runs and combine the results.

    Args:
        exp: The experiment.
        out: Output folder (created).
        engine: ``"serial"``, ``"processes"``, ``"dask"`` or ``"auto"`` (serial for <= 8 runs
            to do or one worker, else processes).
        workers: Worker processes (default: all cores; with ``scheduler``: the cluster's).
        scheduler: Address of a running Dask scheduler, e.g. ``tcp://host:8786`` (implies dask).
        resume: Continue the sweep already in ``out`` (required if ``out`` holds one).
        retry_failed: With ``resume``, compute the failed runs again.
        progress: Show a progress bar (stderr).

    Raises:
        InputError: ``out`` holds another sweep, or holds one and ``resume`` is False.
        KeyboardInterrupt: After saving the manifest; the finished runs are kept.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    parts = out / "parts"
    runs = exp.runs()
    design = exp.design_hash()
    manifest = _read_json(out / "manifest.json")
    if manifest is not None and not resume:
        raise InputError(out, "holds a sweep already: pass --resume to continue it, or choose "
                         "another --out folder")
    if manifest is not None and manifest.get("design_sha256") != design:
        raise InputError(out, f"holds a sweep of another design (experiment "
                         f"{manifest.get('experiment')!r}, changed since?): choose another --out")
    parts.mkdir(parents=True, exist_ok=True)
    for tmp in parts.glob(".*"):  # half-written parts of an interrupted sweep
        tmp.unlink(missing_ok=True)
    if retry_failed:
        for p in parts.glob("*.error.json"):
            p.unlink()
    done = _done(out, retry_failed)
    todo = [r for r in runs if r.run not in done]
    workers = workers or os.cpu_count() or 1
    if scheduler is not None:
        engine = "dask"
    if engine == "auto":
        engine = "serial" if len(todo) <= 8 or workers == 1 else "processes"
    if engine not in ENGINES:
        raise InputError(None, f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    workers = 1 if engine == "serial" else workers
    manifest = manifest or _new_manifest(exp, design, len(runs))
    session = {"engine": engine, "workers": workers, "scheduler": scheduler,
               "started": datetime.now(UTC).isoformat(timespec="seconds"),
               "computed": 0, "elapsed_s": 0.0}
    manifest.setdefault("sessions", []).append(session)
    manifest.update(status="running", engine=engine, workers=workers)
    _write_json(out / "manifest.json", manifest)
    by_id = {r.run: r for r in runs}
    failed, lost, t0 = 0, set(), time.perf_counter()
    saved = t0
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc=exp.name, unit="run",
               disable=not progress or not todo, file=sys.stderr, smoothing=0.05)
    engines = {"serial": _serial, "processes": _processes, "dask": _dask}
    interrupted, gen = False, None
    try:
        if todo:
            gen = engines[engine](todo, exp.outputs, exp.counterfactual, workers=workers,
                                  scheduler=scheduler, parts=parts.absolute())
            for status, rid, value in gen:
                if status == "ok":
                    if value is not None:  # (else saved by the worker)
                        _write_part(parts, rid, value)
                elif status == "error":
                    r = by_id[rid]
                    rec = {"run": rid, "seed": r.seed, "params": dict(r.params), "error": value}
                    _atomic(parts / f"r{rid:06d}.error.json",
                            lambda p, v=rec: p.write_text(json.dumps(v, default=str)))
                    failed += 1
                elif value not in lost:  # each cause once (a broken pool loses every run)
                    lost.add(value)
                    print(f"{exp.name}: run {rid} lost ({value})", file=sys.stderr)
                session["computed"] += status != "lost"
                bar.update(status != "lost")
                if time.perf_counter() - saved > 10:  # the manifest follows a long sweep
                    session["elapsed_s"] = round(time.perf_counter() - t0, 3)
                    _write_json(out / "manifest.json", manifest)
                    saved = time.perf_counter()
                if failed:
                    bar.set_postfix(failed=failed, refresh=False)
    except BaseException:
        interrupted = True
        raise
    finally:
        if gen is not None:
            gen.close()
        bar.close()
        session["elapsed_s"] = round(time.perf_counter() - t0, 3)
        summary = _finish(exp, out, runs, manifest, session, len(runs) - len(todo))
        if interrupted:
            print(f"{exp.name}: interrupted; {summary.runs - summary.missing} of {summary.runs} "
                  f"runs saved in {out}; continue with --resume", file=sys.stderr)
    return summary


def _finish(exp: Experiment, out: Path, runs: list[Run], manifest: dict, session: dict,
            resumed: int) -> Summary:
    """Combine the parts if every run is done; write the manifest; build the summary."""
    failures = _failures(out)
    done = _done(out, False)
    missing = sum(r.run not in done for r in runs)
    note = ""
    if missing == 0:
        _combine(exp, out, runs)
        if exp.design.method != "grid":
            note = _analyze(exp, out, failures)
    manifest.update(
        status="complete" if missing == 0 else "incomplete", completed=len(runs) - missing
        - len(failures), failed=len(failures), missing=missing, failures=failures,
        engine=session["engine"], workers=session["workers"])
    _write_json(out / "manifest.json", manifest)
    return Summary(exp.name, out, len(runs), resumed, session["computed"], failures, missing,
                   session["elapsed_s"], session["engine"], session["workers"], note)


def _analyze(exp: Experiment, out: Path, failures: list) -> str:
    """Write indices.csv (and convergence.csv); return a note for the summary."""
    from model import sensitivity

    if failures:
        return f"no sensitivity analysis: {len(failures)} runs failed"
    table = load_results(out)
    try:
        idx = sensitivity.analyze(exp, table)
        conv = sensitivity.convergence(exp, table) if exp.design.method == "sobol" else None
    except ValueError as e:
        return f"no sensitivity analysis: {e}"
    _atomic(out / "indices.csv", lambda p: idx.to_csv(p, index=False))
    if conv is None:
        return f"Morris indices -> {out / 'indices.csv'}"
    _atomic(out / "convergence.csv", lambda p: conv.to_csv(p, index=False))
    return (f"Sobol indices -> {out / 'indices.csv'}; largest change of S1/ST from N/2 to N = "
            f"{exp.design.n}: {sensitivity.max_change(conv):.3f}")


def load_results(out: str | Path) -> pd.DataFrame:
    """The result table of a finished sweep (``out/results.parquet``)."""
    return pq.read_table(Path(out) / "results.parquet").to_pandas()


def runs_table(exp: Experiment, runs: list[Run] | None = None) -> pd.DataFrame:
    """One row per run: ``run, point, seed`` and the parameter columns (typed)."""
    runs = exp.runs() if runs is None else runs
    df = pd.DataFrame({"run": np.array([r.run for r in runs], dtype=np.int64),
                       "point": np.array([r.point for r in runs], dtype=np.int64),
                       "seed": np.array([r.seed for r in runs], dtype=np.int64)})
    for j, p in enumerate(exp.parameters):
        vals = [r.params[j][1] for r in runs]
        kinds = {type(v) for v in vals if v is not None}
        if kinds <= {int}:
            df[p.name] = pd.array(vals, dtype="Int64")
        elif kinds <= {int, float}:
            df[p.name] = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
        elif kinds <= {bool}:
            df[p.name] = pd.array(vals, dtype="boolean")
        else:
            df[p.name] = pd.array([None if v is None else str(v) for v in vals], dtype="string")
    return df


def _combine(exp: Experiment, out: Path, runs: list[Run]) -> None:
    """parts (+ an earlier results.parquet) -> results.parquet, sorted by run and year."""
    files = sorted((out / "parts").glob("r*.parquet"))
    tables = [pq.read_table(f) for f in files]
    old = out / "results.parquet"
    if old.exists():
        cols = ["run", "year", *exp.outputs]
        tables.insert(0, pq.read_table(old, columns=cols))
    if tables:
        rows = pa.concat_tables(tables, promote_options="default").to_pandas()
        rows = rows.drop_duplicates(["run", "year"]).sort_values(["run", "year"], kind="stable")
    else:
        rows = pd.DataFrame({"run": pd.Series(dtype=np.int64), "year": pd.Series(dtype=np.int64)})
    table = runs_table(exp, runs).merge(rows, on="run", how="inner", validate="1:m")
    _atomic(old, lambda p: pq.write_table(pa.Table.from_pandas(
        table.reset_index(drop=True), preserve_index=False), p))
    for f in files:
        f.unlink()


def _done(out: Path, retry_failed: bool) -> set[int]:
    """Runs with a result: in results.parquet, a part, or a recorded failure."""
    done = {int(p.name[1:7]) for p in (out / "parts").glob("r*.parquet")}
    done |= {int(p.name[1:7]) for p in (out / "parts").glob("r*.error.json")}
    if (out / "results.parquet").exists():
        done |= set(pq.read_table(out / "results.parquet", columns=["run"])["run"].to_pylist())
    if not retry_failed:
        done |= {f["run"] for f in (_read_json(out / "failures.json") or [])}
    return done


def _failures(out: Path) -> list[dict[str, Any]]:
    """Every recorded failure (parts and failures.json), by run; kept in failures.json."""
    recs = {f["run"]: f for f in (_read_json(out / "failures.json") or [])}
    done_ok = {int(p.name[1:7]) for p in (out / "parts").glob("r*.parquet")}
    recs = {k: v for k, v in recs.items() if k not in done_ok}  # retried and succeeded
    for p in sorted((out / "parts").glob("r*.error.json")):
        rec = json.loads(p.read_text())
        recs[rec["run"]] = rec
    failures = [recs[k] for k in sorted(recs)]
    _write_json(out / "failures.json", failures)
    return failures


def _new_manifest(exp: Experiment, design: str, n_runs: int) -> dict[str, Any]:
    import mesa

    return {
        "experiment": exp.name, "description": exp.description, "file": str(exp.path),
        "sha256": exp.sha256, "design_sha256": design, "base_scenario": str(exp.base.source),
        "package": {"name": "cets", "version": __version__}, "code_sha256": code_hash(),
        "versions": {"python": platform.python_version(), "mesa": mesa.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__,
                     "numba": importlib.metadata.version("numba"),
                     "SALib": importlib.metadata.version("SALib"),
                     "dask": importlib.metadata.version("distributed")},
        "seeds": list(exp.seeds), "method": exp.design.method, "runs": n_runs,
        "outputs": list(exp.outputs), "counterfactual": exp.counterfactual,
        "parameters": [p.name for p in exp.parameters],
    }


def code_hash() -> str:
    """SHA-256 of the model's source and data files (``model/*.py``, ``model/data/*.csv``).

    Recorded in the manifest: results computed by other model code can be told apart. Modules
    that cannot change a result (figures, the browser page, the command line) are left out.
    """
    root = Path(__file__).parent
    h = hashlib.sha256()
    skip = {"figures.py", "app.py", "cli.py", "__main__.py"}
    files = [f for f in root.glob("*.py") if f.name not in skip] + [*(root / "data").glob("*.csv")]
    for f in sorted(files):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _atomic(path: Path, write: Any) -> None:
    """Write through ``write(tmp)`` into a hidden temporary file, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=1, default=str) + "\n"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
