"""What the variant drivers (stra_variants, dg_variants) share: running training commands a few at
a time, one thread each, the mean ± sd cell of their tables, and their command line."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path


def run_queue(jobs: list[tuple[Path, list[str]]], parallel: int, runs: Path, cwd: Path | None = None) -> None:
    """Run each ``(out, command)`` with its output in ``runs/<out name>.log``, ``parallel`` at a time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    queue = list(jobs)
    running: list[tuple[str, subprocess.Popen]] = []
    runs.mkdir(parents=True, exist_ok=True)
    while queue or running:
        while queue and len(running) < parallel:
            out, command = queue.pop(0)
            with open(runs / f"{out.name}.log", "a") as log:  # the child keeps its own handle
                process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=cwd)
            print(f"start {out.name}", flush=True)
            running.append((out.name, process))
        pid, status = os.wait()  # whichever run ends first frees its core
        for name, process in list(running):
            if process.pid == pid:
                running.remove((name, process))
                code = os.waitstatus_to_exitcode(status)
                print(f"{'done' if code == 0 else f'FAILED ({code})'} {name}", flush=True)


def mean_sd(values: list[float]) -> str:
    """``mean ± sample sd`` over seeds; one value alone; ``-`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def variant_parser(
    description: str, variants: dict, actions: tuple[str, ...], runs: Path
) -> argparse.Namespace:
    """``run VARIANT... [--parallel N]`` and the other ``actions``, each with ``--seeds`` and ``--runs``."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("variants", nargs="+", choices=sorted(variants))
    run_parser.add_argument("--parallel", type=int, default=2)
    for p in (run_parser, *(sub.add_parser(action) for action in actions)):
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
        p.add_argument("--runs", type=Path, default=runs)
    return parser.parse_args()
