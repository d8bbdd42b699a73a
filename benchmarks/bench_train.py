"""Training throughput of the real training step, and whether the loader keeps the model busy.

For each model, a :class:`~reid_stra.engine.trainer.TrainingRun` is built exactly as
``reid-stra train`` builds it (paper recipe: CE with label smoothing + StRA diversity loss,
Adam, the training transform at 256x128, random sampler, ``--workers``) and its ``train_step``
is timed three ways, interleaved so machine load hits them alike:

* model-only: the step repeated on one batch already in memory (what the model costs);
* full: the step on each batch the DataLoader delivers (what training gets), with the share of
  time spent waiting for the next batch;
* loader-only: iterating the same DataLoader with no model (what the loader can deliver).

full/model near 1.0 (and ~0% waiting) means the loader keeps the model busy. Absolute images/s
depend on the machine and its load; compare ratios within one run.

Data: ``--root`` (Market-1501 layout), else ``../shared/data/Market-1501-mini``, else a
synthetic dataset in a temporary folder (same 64x128 JPEG crops, so the loader does the same work).

    .venv/bin/python -m benchmarks.bench_train
    .venv/bin/python -m benchmarks.bench_train --device cuda --batch-size 64 --workers 8 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reid_stra.engine.distributed import DistContext
from reid_stra.engine.trainer import TrainingRun, plan_run
from reid_stra.utils.device import resolve_device

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = "resnet50,stra_resnet50,mobilenetv2,stra_mobilenetv2"


def main() -> None:
    args = _parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        root, source = _data_root(args.root, Path(scratch))
        results: dict[str, Any] = {
            "machine": _machine(device),
            "load_average_start": _load(),
            "data": source,
            "input_size": [args.height, args.width],
            "batch_size": args.batch_size,
            "workers": args.workers,
            "steps": args.steps,
            "repeats": args.repeats,
            "models": [],
        }
        print(f"data: {source}; {results['machine']}; load {results['load_average_start']}")
        for name in args.models.split(","):
            run = _training_run(name, root, Path(scratch) / name, device, args)
            row = _measure(run, args)
            results["models"].append(row)
            print(
                f"{name:18s} model-only {row['model_only_images_per_s']:7.1f} img/s | full "
                f"{row['full_images_per_s']:7.1f} img/s (x{row['full_over_model_time']:.2f} time, "
                f"waiting {row['loader_wait_share']:.0%}) | "
                f"loader alone {row['loader_images_per_s']:7.1f} img/s"
            )
            del run
        results["load_average_end"] = _load()
    if args.json:  # before printing, so a closed stdout (`| head`) cannot lose the results
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", default=None, help="Market-1501-layout dataset (default: shared mini split)"
    )
    parser.add_argument("--models", default=MODELS, help="comma-separated model names")
    parser.add_argument("--batch-size", type=int, default=32, help="images per training step")
    parser.add_argument("--height", type=int, default=256, help="input height")
    parser.add_argument("--width", type=int, default=128, help="input width")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=1, help="repeat each measurement, report the median")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda (CUDA uses fp16 autocast)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser.parse_args()


def _data_root(root: str | None, scratch: Path) -> tuple[Path, str]:
    if root:
        return Path(root), f"--root {root}"
    if (SHARED_DATA / "Market-1501-mini").is_dir():
        return (
            SHARED_DATA / "Market-1501-mini",
            "../shared/data/Market-1501-mini (real Market-1501 crops, 64x128)",
        )
    from reid_stra.data.synthetic import make_synthetic_dataset

    synthetic = make_synthetic_dataset(scratch / "synthetic", num_train_ids=100, num_test_ids=2, seed=0)
    return synthetic, "synthetic (100 train ids x 4 cameras x 4 images, 64x128)"


def _training_run(name: str, root: Path, out: Path, device: torch.device, args) -> TrainingRun:
    overrides = {
        "root": str(root),
        "model": name,
        "pretrained": "none",
        "height": args.height,
        "width": args.width,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "device": str(device),
        "fixbase_epochs": 0,
        "epochs": 1,
        "eval_every": 0,
    }
    plan = plan_run(out, recipe="paper", overrides=overrides)
    return TrainingRun(plan, DistContext(device=device), lambda _msg: None)


def _measure(run: TrainingRun, args) -> dict[str, Any]:
    device = run.device
    step = run.set_phase(0)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    images, pids, *_ = next(iter(run.loader))
    for _ in range(2):  # warm-up: allocator, cudnn autotune, first-call overheads
        run.train_step(step, images, pids)
    sync()
    model_times, full_times, waits, loader_rates = [], [], [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            run.train_step(step, images, pids)
        sync()
        model_times.append((time.perf_counter() - start) / args.steps)

        run.loader.sampler.set_epoch(repeat + 1)
        iterator = iter(run.loader)
        run.train_step(step, *next(iterator)[:2])  # worker start-up is not steady state
        sync()
        wait = 0.0
        start = time.perf_counter()
        for _ in range(args.steps):
            before = time.perf_counter()
            batch = next(iterator)
            wait += time.perf_counter() - before
            run.train_step(step, batch[0], batch[1])
        sync()
        full_times.append((time.perf_counter() - start) / args.steps)
        waits.append(wait / args.steps)
        del iterator

        run.loader.sampler.set_epoch(repeat + 100)
        iterator = iter(run.loader)
        next(iterator)
        count = max(args.steps, 30)  # enough batches that the prefetched ones do not inflate the rate
        start = time.perf_counter()
        for _ in range(count):
            next(iterator)
        loader_rates.append(count * args.batch_size / (time.perf_counter() - start))
        del iterator
    model_s, full_s, wait_s = (statistics.median(v) for v in (model_times, full_times, waits))
    return {
        "model": run.config.model,
        "amp_fp16": run.use_amp,
        "model_only_step_s": round(model_s, 4),
        "full_step_s": round(full_s, 4),
        "model_only_images_per_s": round(args.batch_size / model_s, 1),
        "full_images_per_s": round(args.batch_size / full_s, 1),
        "full_over_model_time": round(full_s / model_s, 2),
        "loader_wait_share": round(wait_s / full_s, 3),
        "loader_images_per_s": round(statistics.median(loader_rates), 1),
    }


def _machine(device: torch.device) -> str:
    cpu = f"{os.cpu_count()}-core CPU ({platform.machine()})"
    if device.type == "cuda":
        return f"{cpu}, {torch.cuda.get_device_name(device)}"
    return f"{cpu}, no GPU used; torch threads {torch.get_num_threads()}"


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


if __name__ == "__main__":
    main()
