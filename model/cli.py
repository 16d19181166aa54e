"""The command line: ``cets run SCENARIO.toml --out DIR``.

Bad input exits with status 2 and one line naming the file, line or field, and the problem.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model import __version__
from model.errors import InputError, interruption


def _run(args: argparse.Namespace) -> int:
    from model.model import CarbonMarket
    from model.results import summary, write_results
    from model.scenario import load_scenario

    t0 = time.perf_counter()
    scenario = load_scenario(args.scenario)
    if args.seed is not None:
        scenario = scenario.replace(seed=args.seed)
    model = CarbonMarket(scenario, agents=args.agents)
    model.run()
    tables = write_results(model, args.out)
    if not args.quiet:
        print(f"{scenario.name}: {scenario.start_year}-{scenario.end_year}, "
              f"{model.firms.n} firms, {time.perf_counter() - t0:.2f} s -> {args.out}")
        print(summary(tables["years"]))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from model.experiment import load_experiment
    from model.sweep import sweep

    exp = load_experiment(args.experiment)
    summary = sweep(exp, args.out, engine=args.engine, workers=args.workers,
                    scheduler=args.scheduler, resume=args.resume, retry_failed=args.retry_failed,
                    progress=not args.quiet)
    if not args.quiet or summary.failures or summary.missing:
        print(summary.text())
    return 1 if summary.failures or summary.missing else 0


def _figures(args: argparse.Namespace) -> int:
    from model.figures import make_figures

    written = make_figures(args.experiments, args.results, args.out, engine=args.engine,
                           workers=args.workers, scheduler=args.scheduler, only=args.only,
                           rerun=args.rerun, progress=not args.quiet)
    if not args.quiet:
        print(f"{len(written)} figures -> {args.out}")
    return 0


def _free_port(host: str, preferred: int) -> int:
    """``preferred`` if it is free on ``host``, else a free port the system picks."""
    import socket

    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise InputError(None, f"cannot listen on {host}: no free port")


def _viz(args: argparse.Namespace) -> int:
    import os

    port = args.port if args.port is not None else _free_port(args.host, 8765)
    app = Path(__file__).resolve().with_name("app.py")
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"}
    cmd = [sys.executable, "-m", "solara", "run", str(app), "--host", args.host,
           "--port", str(port), "--production", "--no-open"]
    print(f"cets viz: http://{args.host}:{port}/ (port {port}; Ctrl+C stops it)", flush=True)
    os.execve(sys.executable, cmd, env)  # this process becomes the server (signals reach it)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cets``."""
    p = argparse.ArgumentParser(
        prog="cets",
        description="An agent-based policy model of China's national carbon market.",
    )
    p.add_argument("--version", action="version", version=f"cets {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one scenario and write years/sectors/firms CSV files")
    run.add_argument("scenario", type=Path, help="scenario TOML file")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument("--agents", action="store_true",
                     help="also create one Mesa agent per firm (views of the firm arrays; the "
                          "results are the same, the browser page and DataCollector use them)")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    run.set_defaults(func=_run)
    engines = ("auto", "serial", "processes", "dask")
    sw = sub.add_parser("sweep", help="run an experiment (a batch of runs) into a Parquet table")
    sw.add_argument("experiment", type=Path, help="experiment TOML file (experiments/*.toml)")
    sw.add_argument("--out", type=Path, required=True, help="output folder")
    sw.add_argument("--engine", choices=engines, default="auto",
                    help="serial (this process), processes (local pool) or dask; auto: serial "
                         "for <= 8 runs, else processes")
    sw.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    sw.add_argument("--scheduler", default=None,
                    help="address of a running Dask scheduler, e.g. tcp://host:8786 (implies dask)")
    sw.add_argument("--resume", action="store_true",
                    help="continue the sweep in --out, computing only the missing runs")
    sw.add_argument("--retry-failed", action="store_true", help="with --resume: rerun failed runs")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    sw.set_defaults(func=_sweep)
    fg = sub.add_parser("figures", help="draw every figure from the experiments' results "
                        "(running the sweeps whose results are missing)")
    fg.add_argument("--experiments", type=Path, default=Path("experiments"),
                    help="folder of the experiment TOML files (default: experiments)")
    fg.add_argument("--results", type=Path, default=Path("results/sweeps"),
                    help="folder of the sweep results, one sub-folder per experiment")
    fg.add_argument("--out", type=Path, default=Path("results/figures"), help="figure folder")
    fg.add_argument("--engine", choices=engines, default="auto", help="engine of missing sweeps")
    fg.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    fg.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    fg.add_argument("--only", nargs="+", default=None, metavar="FIGURE",
                    help="draw only these figures (names without extension)")
    fg.add_argument("--rerun", action="store_true",
                    help="sweep the experiments again even if their results are complete")
    fg.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    fg.set_defaults(func=_figures)
    vz = sub.add_parser("viz", help="start the browser page (Mesa SolaraViz) on this machine")
    vz.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                    "127.0.0.1, this machine only)")
    vz.add_argument("--port", type=int, default=None,
                    help="port (default: 8765, or a free one if 8765 is taken)")
    vz.set_defaults(func=_viz)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cets`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemError as err:  # Ctrl-C inside compiled (numba) code surfaces as this
        if interruption(err) is None:
            raise
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
