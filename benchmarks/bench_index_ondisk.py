"""Memory of a search over an IVF index whose inverted lists are on disk, against the index in RAM.

1. A re-ID-shaped gallery (``--ids`` x ``--views``, ``--dim``; as in ``bench_index_large``) is
   written as a reid-stra feature file, and an index of ``--kind`` is built over it twice
   (``build_index`` + ``save_index``, the code of ``reid-stra index build``), beside two names of
   the same features: in RAM and ``--on-disk`` (for ivf the very same lists; an on-disk ivfpq scans
   its codes without fast scan).
2. Each is searched in a fresh process as ``reid-stra search`` does (``load_or_build_index``, then
   ``SearchIndex.search``): resident memory (``VmRSS``, peak ``VmHWM``, and ``RssAnon`` /
   ``RssFile``: private memory / pages of mapped files, which the kernel can drop and read again,
   from /proc/self/status) after the imports, after loading the index, after 10 queries and after
   the rest of ``--queries``, with how many lists those queries probe; the answers are compared.

    .venv/bin/python -m benchmarks.bench_index_ondisk [--kind ivf|ivfpq --ids 15000 --views 20 --nlist 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_index_large import views, write_gallery
from reid_stra.retrieval.features import load_features
from reid_stra.retrieval.index import build_index
from reid_stra.retrieval.index_store import index_path, save_index
from reid_stra.utils.precision import cpu_model_name

SEARCH = """
import json, sys, time
import faiss
import numpy as np
from reid_stra.retrieval.index_store import load_or_build_index

def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {key: int(fields[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}

def lists_probed(queries):
    ivf = faiss.extract_index_ivf(searcher.index)
    _, probed = ivf.quantizer.search(queries, int(searcher.params["nprobe"]))
    lists = np.unique(probed[probed >= 0])
    entries = sum(ivf.invlists.list_size(int(number)) for number in lists)
    return {"lists": len(lists), "list_mib": round(entries * (ivf.code_size + 8) / 2**20, 1)}

queries = np.load(sys.argv[2])
report = {"imports": memory()}
searcher = load_or_build_index(sys.argv[1], "auto", progress=False)
report["loaded"] = memory()
started = time.perf_counter()
_, first = searcher.search(queries[:10], 10)
seconds = round(time.perf_counter() - started, 3)
report["10 queries"] = {**memory(), "seconds": seconds, **lists_probed(queries[:10])}
started = time.perf_counter()
_, rest = searcher.search(queries[10:], 10)
seconds = round(time.perf_counter() - started, 3)
report[f"{len(queries) - 10} more"] = {**memory(), "seconds": seconds, **lists_probed(queries)}
np.save(sys.argv[3], np.concatenate([first, rest]))
print(json.dumps(report))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", choices=("ivf", "ivfpq"), default="ivf")
    parser.add_argument("--ids", type=int, default=15_000)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=1_010)
    parser.add_argument("--tmp", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        folder = Path(scratch)
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((args.ids, args.dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        on_disk = folder / "ondisk.npy"
        write_gallery(on_disk, centres, args.views, 0.75, seed=1)
        in_ram = folder / "inram.npy"
        os.link(on_disk, in_ram)
        os.link(on_disk.with_suffix(".json"), in_ram.with_suffix(".json"))
        queries = folder / "queries.npy"
        np.save(queries, views(centres[rng.integers(0, args.ids, args.queries)], 0.75, rng))

        features, meta = load_features(on_disk)
        build_seconds = {}
        for name, path in (("in RAM", in_ram), ("on disk", on_disk)):
            started = time.perf_counter()
            built = build_index(
                features, args.kind, nlist=args.nlist, on_disk=path == on_disk, progress=False
            )
            save_index(built, path, meta)
            build_seconds[name] = round(time.perf_counter() - started, 1)
        del built, features

        results: dict[str, object] = {
            "cpu": cpu_model_name(),
            "gallery": f"{args.ids * args.views} x {args.dim} ({on_disk.stat().st_size >> 20} MiB)",
            "index": f"{args.kind}, nlist {args.nlist}, default nprobe",
            "build_seconds": build_seconds,
            "index_mib": {
                "in RAM": index_path(in_ram).stat().st_size >> 20,
                "on disk": f"{index_path(on_disk).stat().st_size >> 20} + "
                f"{(folder / 'ondisk.faiss.ivfdata').stat().st_size >> 20} (lists)",
            },
        }
        answers = {}
        for name, path in (("in RAM", in_ram), ("on disk", on_disk)):
            found = folder / f"{path.stem}.found.npy"
            run = subprocess.run(
                [sys.executable, "-c", SEARCH, str(path), str(queries), str(found)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[name] = json.loads(run.stdout.splitlines()[-1])
            answers[name] = np.load(found)
        ram, disk = answers["in RAM"], answers["on disk"]
        results["same answers"] = bool(np.array_equal(ram, disk))
        overlap = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ram, disk, strict=True)])
        results["top-10 overlap"] = round(float(overlap), 4)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
