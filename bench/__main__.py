"""``python -m bench <scenario> [options] --json PATH [--plot PATH.png]``

Each scenario is a module ``bench/<scenario>.py`` with:

    DESCRIPTION: str
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> dict            # the JSON object (figures the issue names)
    def plot(result: dict, path: pathlib.Path) -> None    # optional

The result is printed as one JSON line and written to ``--json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

import bench


def scenarios() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if hasattr(module, "run") and hasattr(module, "add_arguments"):
            found[info.name] = module
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Switchboard benchmarks")
    sub = parser.add_subparsers(dest="scenario", required=True)
    for name, module in sorted(scenarios().items()):
        p = sub.add_parser(name, help=getattr(module, "DESCRIPTION", ""))
        module.add_arguments(p)
        p.add_argument("--json", type=Path, required=True, help="write the result object here")
        p.add_argument("--plot", type=Path, help="write a PNG plot here")
    args = parser.parse_args(argv)
    module = scenarios()[args.scenario]
    result = module.run(args)
    line = json.dumps(result, sort_keys=False)
    print(line)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(line + "\n")
    if args.plot is not None:
        if not hasattr(module, "plot"):
            print(f"bench: scenario {args.scenario} has no plot", file=sys.stderr)
            return 2
        import matplotlib

        matplotlib.use("Agg")
        module.plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
