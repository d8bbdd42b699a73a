"""`reid-stra extract` end to end against torchreid's FeatureExtractor (issue 30's 4x target).

Both run as a user runs them, as whole processes on the same crops (the first ``--images`` of
Market-1501-mini's gallery), MobileNetV2 at 256x128 on the CPU:

- ours: ``reid-stra extract LIST -o F`` with the shipped default (``--backend auto``: ONNX Runtime
  on a CPU where it is installed; ``--backend pytorch`` is a second row);
- theirs: torchreid's ``FeatureExtractor('mobilenetv2_x1_0', image_size=(256, 128), device='cpu')``
  over the same paths in batches of 32 (its own preprocessing and forward), from weights saved
  once (random, so that it loads no ImageNet download; speed does not depend on the values).

Wall time per process (process start and model load included for both), ``--rounds`` interleaved
rounds, medians. torchreid is not a dependency of this project: install it beside it, e.g.

    pip install --no-deps --target /tmp/trpkgs torchreid
    pip install --no-deps --target /tmp/trpkgs gdown yacs tensorboard
    .venv/bin/python -m benchmarks.bench_vs_torchreid --torchreid-path /tmp/trpkgs \
        [--images 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reid_stra.utils.precision import cpu_model_name

ROOT = Path(__file__).resolve().parents[1]
CROPS = ROOT.parent / "shared" / "data" / "Market-1501-mini" / "bounding_box_test"
CLI = str(Path(sys.executable).with_name("reid-stra"))

_SAVE_TORCHREID = """
import sys, torch
from torchreid.reid.models import build_model
torch.save(build_model("mobilenetv2_x1_0", num_classes=1, pretrained=False).state_dict(), sys.argv[1])
"""
_RUN_TORCHREID = """
import sys, torch
from torchreid.reid.utils import FeatureExtractor
paths = open(sys.argv[1]).read().split("\\n")
extractor = FeatureExtractor("mobilenetv2_x1_0", model_path=sys.argv[2], image_size=(256, 128),
                             device="cpu", verbose=False)
rows = 0
for start in range(0, len(paths), 32):
    rows += extractor(paths[start:start + 32]).shape[0]
print(rows)
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{command[:3]}...: exit {result.returncode}: {result.stderr.strip()[-600:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchreid-path", type=Path, required=True, help="folder holding torchreid")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    paths = sorted(str(p) for p in CROPS.glob("*.jpg"))[: args.images]
    env = {**os.environ, "REID_STRA_NO_PROGRESS": "1"}
    theirs_env = {**env, "PYTHONPATH": str(args.torchreid_path)}
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "paths.txt"
        listing.write_text("\n".join(paths))
        weights = Path(scratch) / "torchreid_mobilenetv2.pth"
        timed([sys.executable, "-c", _SAVE_TORCHREID, str(weights)], theirs_env)
        commands = {
            "torchreid FeatureExtractor": [sys.executable, "-c", _RUN_TORCHREID, str(listing), str(weights)],
            "reid-stra extract (auto: ONNX Runtime)": [CLI, "extract", str(listing), "-o"],
            "reid-stra extract --backend pytorch": [
                CLI,
                "extract",
                str(listing),
                "--backend",
                "pytorch",
                "-o",
            ],
        }
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.rounds):
            for name, command in commands.items():
                if command[0] == CLI:
                    command = [*command, str(Path(scratch) / f"f{round_}_{len(seconds[name])}.npy")]
                seconds[name].append(timed(command, theirs_env if "torchreid" in name else env))
                print(f"round {round_ + 1}: {name} {seconds[name][-1]:.1f} s", flush=True)
    base = statistics.median(seconds["torchreid FeatureExtractor"])
    rows = {
        name: {
            "median_s": round(statistics.median(values), 2),
            "img_per_s": round(len(paths) / statistics.median(values), 1),
            "vs_torchreid": round(base / statistics.median(values), 2),
            "all_s": [round(v, 2) for v in values],
        }
        for name, values in seconds.items()
    }
    print(f"\nCPU: {cpu_model_name()}, {os.cpu_count()} cores; {len(paths)} crops, {args.rounds} rounds")
    print("| way | wall s (median) | img/s | vs torchreid |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['median_s']} | {row['img_per_s']} | {row['vs_torchreid']}× |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"cpu": cpu_model_name(), "images": len(paths), "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
