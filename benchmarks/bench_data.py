"""Data-loading benchmark: does the training loader keep the model busy?

Two measurements, both as ratios within one run (other processes load the machine too):

1. Loader throughput (images/s) at 256x128 with the training transform and the identity
   (P x K) sampler, for each ``--workers`` value; ratio against a baseline row: workers=0 with
   the transform on torch's thread pool (before ImageDataset ran it on one thread).
2. Model-only training step vs full step (loader + the same step) for ``--model``: a full/model
   ratio near 1.0 means the loader keeps up; the loader-wait share says how much of the full
   step was spent waiting for the next batch.

Data: ``--root`` (Market-1501 layout), else ``../shared/data/Market-1501-mini``, else a
synthetic dataset generated in a temporary folder.

    .venv/bin/python -m benchmarks.bench_data
    .venv/bin/python -m benchmarks.bench_data --device cuda --workers 0,2,4,8 --full-workers 8
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

from reid_stra.data.datasets import load_dataset
from reid_stra.data.loading import build_train_loader, reraise_worker_errors
from reid_stra.data.synthetic import make_synthetic_dataset
from reid_stra.data.transforms import build_train_transform
from reid_stra.utils.device import resolve_device

SHARED_MARKET = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIZE = (256, 128)


def main() -> None:
    args = _parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        root, source = _data_root(args.root, Path(scratch))
        dataset = load_dataset("market1501", root, splits=("train",))
        train = dataset.train
        device = resolve_device(args.device)
        results: dict[str, Any] = {
            "machine": _machine(device),
            "data": source,
            "train_images": len(train),
            "train_ids": dataset.num_train_pids,
            "input_size": list(SIZE),
            "batch_size": args.batch_size,
            "num_instances": args.num_instances,
        }
        print(f"data: {source} ({len(train)} train images, {dataset.num_train_pids} ids); device: {device}")
        results["loader"] = _loader_throughput(train, args)
        results["step"] = _model_vs_full_step(train, dataset.num_train_pids, device, args)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", default=None, help="Market-1501-layout dataset (default: shared mini split)"
    )
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts to compare")
    parser.add_argument(
        "--full-workers", type=int, default=None, help="workers for the full step (default: max)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument("--num-instances", type=int, default=4, help="K of the P x K sampler")
    parser.add_argument("--batches", type=int, default=15, help="timed batches per loader measurement")
    parser.add_argument("--model", default="mobilenetv2", help="model for the step comparison ('' to skip)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per step measurement")
    parser.add_argument("--repeats", type=int, default=2, help="repeat each measurement, report the median")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser.parse_args()


def _data_root(root: str | None, scratch: Path) -> tuple[Path, str]:
    if root:
        return Path(root), f"--root {root}"
    if (SHARED_MARKET / "Market-1501-mini").is_dir():
        return (
            SHARED_MARKET / "Market-1501-mini",
            "../shared/data/Market-1501-mini (real Market-1501 crops, 64x128)",
        )
    synthetic = make_synthetic_dataset(scratch / "synthetic", num_train_ids=100, num_test_ids=2, seed=0)
    return synthetic, "synthetic (100 train ids x 4 cameras x 4 images, 64x128)"


def _machine(device: torch.device) -> str:
    cpu = f"{os.cpu_count()}-core CPU ({platform.machine()})"
    if device.type == "cuda":
        return f"{cpu}, {torch.cuda.get_device_name(device)}"
    return f"{cpu}, no GPU used; torch threads {torch.get_num_threads()}"


def _loader(train, args, workers: int, pin: bool = False):
    return build_train_loader(
        train,
        build_train_transform(SIZE),
        batch_size=args.batch_size,
        num_instances=args.num_instances,
        workers=workers,
        seed=0,
        pin_memory=pin,
    )


def _loader_throughput(train, args) -> list[dict[str, Any]]:
    """Images/s of iterating the loader alone (startup of workers timed separately).

    The first row is the baseline: workers=0 with the transform on all of torch's threads
    (what ImageDataset did before it pinned the main-process transform to one thread).
    """
    rate, startup = _time_loader(train, args, 0, single_threaded=False)
    rows = [{"workers": "0, transform on torch threads", "images_per_s": rate, "first_batch_s": startup}]
    for workers in [int(w) for w in args.workers.split(",")]:
        rate, startup = _time_loader(train, args, workers)
        rows.append({"workers": workers, "images_per_s": rate, "first_batch_s": startup})
    for row in rows:
        row["ratio_vs_baseline"] = round(row["images_per_s"] / rows[0]["images_per_s"], 2)
        print(
            f"loader workers={row['workers']}: {row['images_per_s']:.1f} img/s "
            f"(x{row['ratio_vs_baseline']:.2f} vs the first row), first batch {row['first_batch_s']:.2f}s"
        )
    return rows


def _time_loader(train, args, workers: int, single_threaded: bool = True) -> tuple[float, float]:
    rates, startups = [], []
    for repeat in range(args.repeats):
        loader = _loader(train, args, workers)
        loader.dataset.single_threaded = single_threaded
        loader.sampler.set_epoch(repeat)
        with reraise_worker_errors():
            start = time.perf_counter()
            iterator = iter(loader)
            next(iterator)
            startups.append(time.perf_counter() - start)
            start = time.perf_counter()
            count = 0
            for count, _batch in enumerate(iterator, 1):  # noqa: B007 - count is used after the loop
                if count == args.batches:
                    break
            elapsed = time.perf_counter() - start
        del iterator
        rates.append(count * args.batch_size / elapsed)
    return round(statistics.median(rates), 1), round(statistics.median(startups), 3)


def _model_vs_full_step(train, num_classes: int, device: torch.device, args) -> dict[str, Any] | None:
    if not args.model:
        return None
    try:
        import reid_stra

        model = reid_stra.build_model(args.model, num_classes=num_classes).to(device)
    except Exception as exc:  # noqa: BLE001 - the model is optional here: report and skip
        print(f"step comparison skipped: cannot build model {args.model!r} ({type(exc).__name__}: {exc})")
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    use_amp = device.type == "cuda"

    def step(images: torch.Tensor, pids: torch.Tensor) -> None:
        images = images.to(device, non_blocking=True)
        pids = pids.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(images)
            logits = out["logits"] if isinstance(out, dict) else out
            loss = torch.nn.functional.cross_entropy(logits.float(), pids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    workers = (
        args.full_workers if args.full_workers is not None else max(int(w) for w in args.workers.split(","))
    )
    loader = _loader(train, args, workers, pin=device.type == "cuda")
    images, pids, _, _ = next(iter(loader))
    for _ in range(2):  # warm-up: allocator, cudnn autotune, first-call overheads
        step(images, pids)
    sync()
    model_times, full_times, waits = [], [], []
    for repeat in range(args.repeats):  # interleaved, so load changes hit both alike
        start = time.perf_counter()
        for _ in range(args.steps):
            step(images, pids)
        sync()
        model_times.append((time.perf_counter() - start) / args.steps)

        loader.sampler.set_epoch(repeat + 1)
        iterator = iter(loader)
        step(*next(iterator)[:2])  # worker start-up is not part of the steady state
        sync()
        wait = 0.0
        start = time.perf_counter()
        with reraise_worker_errors():
            for _ in range(args.steps):
                before = time.perf_counter()
                batch = next(iterator)
                wait += time.perf_counter() - before
                step(batch[0], batch[1])
        sync()
        full_times.append((time.perf_counter() - start) / args.steps)
        waits.append(wait / args.steps)
        del iterator
    model_s, full_s, wait_s = (statistics.median(v) for v in (model_times, full_times, waits))
    result = {
        "model": args.model,
        "workers": workers,
        "amp_bf16": use_amp,
        "model_only_step_s": round(model_s, 4),
        "full_step_s": round(full_s, 4),
        "model_only_images_per_s": round(args.batch_size / model_s, 1),
        "full_images_per_s": round(args.batch_size / full_s, 1),
        "full_over_model_time": round(full_s / model_s, 2),
        "loader_wait_share": round(wait_s / full_s, 3),
    }
    print(
        f"{args.model} step, batch {args.batch_size}: model-only {model_s * 1000:.1f} ms "
        f"({result['model_only_images_per_s']} img/s); full {full_s * 1000:.1f} ms "
        f"({result['full_images_per_s']} img/s) with {workers} workers; "
        f"full/model x{full_s / model_s:.2f}, waiting for data {wait_s / full_s:.0%}"
    )
    return result


if __name__ == "__main__":
    main()
