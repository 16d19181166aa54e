"""The command line: ``cets run SCENARIO.toml --out DIR``.

Bad input exits with status 2 and one line naming the file, line or field, and the problem.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model import __version__
from model.errors import InputError


def _run(args: argparse.Namespace) -> int:
    from model.model import CarbonMarket
    from model.results import summary, write_results
    from model.scenario import load_scenario

    t0 = time.perf_counter()
    scenario = load_scenario(args.scenario)
    if args.seed is not None:
        scenario = scenario.replace(seed=args.seed)
    model = CarbonMarket(scenario, agents=not args.no_agents)
    model.run()
    tables = write_results(model, args.out)
    if not args.quiet:
        print(f"{scenario.name}: {scenario.start_year}-{scenario.end_year}, "
              f"{model.firms.n} firms, {time.perf_counter() - t0:.2f} s -> {args.out}")
        print(summary(tables["years"]))
    return 0


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
    run.add_argument("--no-agents", action="store_true",
                     help="skip creating Mesa agents (faster for very large firm tables)")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    run.set_defaults(func=_run)
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


if __name__ == "__main__":
    sys.exit(main())
