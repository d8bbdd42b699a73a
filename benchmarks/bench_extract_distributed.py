"""`torchrun --nproc_per_node 2 reid-stra extract` against one process, same crops, same run.

``--images`` real crops (Market-1501-mini's training split), the shipped default, ``--backend``
(default: what ``auto`` picks), one thread per process (torchrun's default), one DataLoader
worker each. Wall time of the whole command (process start and model load included), rounds
interleaved, medians; the two files are compared row for row. Prints the CPU and a table.

    .venv/bin/python -m benchmarks.bench_extract_distributed [--images 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reid_stra.utils.precision import cpu_model_name

ROOT = Path(__file__).resolve().parents[1]
CROPS = ROOT.parent / "shared" / "data" / "Market-1501-mini" / "bounding_box_train"
CLI = str(Path(sys.executable).with_name("reid-stra"))


def run(processes: int, listing: Path, out: Path, backend: str) -> float:
    launcher = [CLI]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += ["--nproc_per_node", str(processes), "--no-python", CLI]
    command = [*launcher, "extract", str(listing), "-o", str(out), "--workers", "1", "--backend", backend]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stale in out.parent.glob(out.stem + "*"):
        if stale.is_file():
            stale.unlink()
    started = time.perf_counter()
    subprocess.run([*command, "--json"], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    images = sorted(str(p) for p in CROPS.glob("*.jpg"))[: args.images]
    if len(images) < args.images:
        raise SystemExit(f"{CROPS}: fewer than {args.images} crops (the shared Market-1501-mini split)")
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "crops.txt"
        listing.write_text("\n".join(images) + "\n")
        outs = {n: Path(folder) / f"p{n}.npy" for n in times}
        for _ in range(args.repeats):
            for processes in times:
                times[processes].append(run(processes, listing, outs[processes], args.backend))
        identical = np.array_equal(np.load(outs[1]), np.load(outs[2]))
    one, two = (statistics.median(times[n]) for n in (1, 2))
    print(f"CPU: {cpu_model_name()}, {os.cpu_count()} cores; {len(images)} crops, backend {args.backend}")
    print("| processes (1 thread each) | wall s | img/s | speed-up | features |")
    print("|---|---|---|---|---|")
    print(f"| 1 | {one:.1f} | {len(images) / one:.1f} | 1.00x | reference |")
    same = "identical row for row" if identical else "DIFFER"
    print(f"| 2 (torchrun, gloo) | {two:.1f} | {len(images) / two:.1f} | {one / two:.2f}x | {same} |")


if __name__ == "__main__":
    main()
