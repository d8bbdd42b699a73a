"""Mode statistics of a StRA model on real crops (issue 16): how many modes are stuck on one cell,
how far their peaks move, and how much pooling mass sits on border cells.

    .venv/bin/python -m benchmarks.mode_stats weights/stra_mobilenetv2_market1501mini.pth [--crops 24]

Runs ``reid-stra explain --json`` (fp32) on evenly spaced crops of
``../shared/data/Market-1501-mini/query`` and summarizes its per-mode rows: a mode is stuck when
its peak is the same cell on every crop (peak motion 0).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

QUERY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Market-1501-mini" / "query"


def mode_stats(weights: str, crops: int) -> dict[str, float]:
    paths = sorted(QUERY.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"{QUERY}: no crops (the shared Market-1501-mini split is needed)")
    chosen = [str(p) for p in paths[:: max(1, len(paths) // crops)][:crops]]
    figures = tempfile.mkdtemp()  # explain draws figures too; only its JSON is kept
    cli = str(Path(sys.executable).with_name("reid-stra"))
    options = ["--weights", weights, "--max-images", str(crops), "--json", "--precision", "fp32"]
    command = [cli, "explain", *chosen, *options, "-o", f"{figures}/modes.png"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(figures, ignore_errors=True)
    modes = json.loads(done.stdout)["modes"]
    count = len(modes)
    return {
        "crops": len(chosen),
        "modes": count,
        "stuck": sum(m["peak_motion"] == 0 for m in modes),
        "mean_peak_motion": sum(m["peak_motion"] for m in modes) / count,
        "mean_border_mass": sum(m["border_mass"] for m in modes) / count,
        "uniform_border_mass": modes[0]["border_share"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--crops", type=int, default=24)
    args = parser.parse_args()
    stats = mode_stats(args.weights, args.crops)
    print(json.dumps({"weights": args.weights, **stats}))


if __name__ == "__main__":
    main()
