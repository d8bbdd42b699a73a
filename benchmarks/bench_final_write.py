"""Peak memory of `extract`'s final write: chunks streamed into the file vs concatenated in memory.

``extract`` saves its work in chunks (``<out>.partial/chunk_*.npy``) and, at the end, writes them
into one feature file. This benchmark writes ``--rows`` x ``--dim`` synthetic float32 features as
chunks of ``--chunk-rows`` on disk, then runs the final write in a fresh process and reports that
process's peak RSS (``ru_maxrss``, which counts the memory-mapped chunk pages it touches):
- ``streamed``: what ``extract`` does (``save_features_streamed``: one chunk at a time, checksum
  on the way);
- ``in memory``: load and concatenate every chunk, then ``save_features`` (the previous final
  write), run on ``--in-memory-rows`` only, since at full size it needs the whole array twice.

    .venv/bin/python -m benchmarks.bench_final_write [--rows 5000000] [--dim 256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reid_stra.utils.precision import cpu_model_name

CHILD = r"""
import resource, sys, time
from pathlib import Path
import numpy as np
from reid_stra.retrieval.features import FeatureMeta, save_features, save_features_streamed
folder, mode, rows, dim = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = sorted(folder.glob("chunk_*.npy"))
meta = FeatureMeta(paths=[f"{i}.jpg" for i in range(rows)])
started = time.perf_counter()
if mode == "baseline":  # the imports alone (numpy, torch through the package)
    (folder / "out.npy").touch()
elif mode == "streamed":
    blocks = lambda: (np.load(f, mmap_mode="r") for f in files)
    save_features_streamed(folder / "out.npy", blocks, rows, dim, meta)
else:
    save_features(folder / "out.npy", np.concatenate([np.load(f) for f in files]), meta)
seconds = time.perf_counter() - started
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, seconds)
"""


def write_chunks(folder: Path, rows: int, dim: int, chunk_rows: int) -> None:
    rng = np.random.default_rng(0)
    for start in range(0, rows, chunk_rows):
        block = rng.standard_normal((min(chunk_rows, rows - start), dim), dtype=np.float32)
        np.save(folder / f"chunk_{start:09d}.npy", block)


def measure(folder: Path, mode: str, rows: int, dim: int) -> tuple[float, float]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), mode, str(rows), str(dim)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    peak_mb, seconds = (float(v) for v in result.stdout.split())
    (folder / "out.npy").unlink()
    return peak_mb, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--in-memory-rows", type=int, default=500_000)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the chunks (needs 2x the data)")
    args = parser.parse_args()
    rows_by_mode = {
        "none (imports only)": [args.in_memory_rows],
        "streamed": [args.in_memory_rows, args.rows],
        "in memory": [args.in_memory_rows],
    }
    table = []
    for mode, sizes in rows_by_mode.items():
        for rows in sizes:
            with tempfile.TemporaryDirectory(dir=args.tmp) as name:
                folder = Path(name)
                started = time.perf_counter()
                write_chunks(folder, rows, args.dim, args.chunk_rows)
                setup = time.perf_counter() - started
                child_mode = {"streamed": "streamed", "in memory": "memory"}.get(mode, "baseline")
                peak_mb, seconds = measure(folder, child_mode, rows, args.dim)
                data_mb = rows * args.dim * 4 / 2**20
                table.append((mode, rows, data_mb, peak_mb, seconds, setup))
    print(f"CPU: {cpu_model_name()}; chunks of {args.chunk_rows} rows, dim {args.dim}, float32")
    print("| final write | rows | data MB | peak RSS MB | seconds |")
    print("|---|---|---|---|---|")
    for mode, rows, data_mb, peak_mb, seconds, _ in table:
        print(f"| {mode} | {rows:,} | {data_mb:,.0f} | {peak_mb:,.0f} | {seconds:.1f} |")
    print(
        json.dumps(
            [
                dict(zip(("mode", "rows", "data_mb", "peak_mb", "seconds", "setup_s"), r, strict=True))
                for r in table
            ]
        )
    )


if __name__ == "__main__":
    main()
