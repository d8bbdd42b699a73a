"""Extraction benchmark: ``extract_features`` vs a naive single-process loop, same model, same run.

The naive loop is what a first script (or torchreid's ``FeatureExtractor``) does: for each
batch of 32 paths, decode and transform every image in this process, stack, and run the model
under ``torch.no_grad()``. Ours (:func:`reid_stra.retrieval.extract.extract_features`) decodes in
worker processes while the model runs, in ``inference_mode``, with BatchNorm folded into the
convolutions and channels-last memory. The middle row (ours with ``workers=0``: decoding in the
main process) separates the model-side gains from the parallel decoding.

Models get calibrated BatchNorm statistics (one train-mode pass over real crops) instead of
the random-init ones, whose vanishing activations turn into slow denormal arithmetic on CPUs
and would not be representative of a trained model.

Images: ``--root`` (any folder), else ../shared/data/Market-1501-mini query + gallery, else a
synthetic dataset; the first ``--images`` of them (sorted), at 256x128, batch 32.

    .venv/bin/python -m benchmarks.bench_extract
    .venv/bin/python -m benchmarks.bench_extract --models mobilenetv2 --images 640 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reid_stra.data.images import read_image
from reid_stra.data.transforms import build_eval_transform
from reid_stra.models import build_model
from reid_stra.retrieval.extract import extract_features
from reid_stra.retrieval.inputs import expand_inputs
from reid_stra.utils.device import resolve_device
from reid_stra.utils.precision import cpu_model_name

SHARED_MARKET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Market-1501-mini"
SIZE = (256, 128)
# torchreid FeatureExtractor on this kind of machine, docs/REFERENCE_NUMBERS.md in ../shared.
REFERENCE_IMG_PER_S = {"mobilenetv2": 37.0, "resnet50": 10.3}


def main() -> None:
    args = _parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        paths, source = _images(args.root, Path(scratch), args.images)
        results: dict[str, Any] = {
            "machine": _machine(device),
            "images": len(paths),
            "source": source,
            "input_size": list(SIZE),
            "batch_size": args.batch_size,
            "workers": args.workers,
            "models": {},
        }
        print(f"{len(paths)} images from {source}; device {device}; load {os.getloadavg()[0]:.1f}")
        for name in args.models.split(","):
            model = _calibrated(name, paths[: args.batch_size], device)
            results["models"][name] = _compare(model, paths, device, args)
            print(json.dumps({name: results["models"][name]}))
    print(json.dumps(results, indent=2))
    _print_markdown(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def _compare(model: torch.nn.Module, paths: list[str], device: torch.device, args) -> dict[str, Any]:
    """Best images/s of each way over ``--rounds`` interleaved rounds (the machine is shared)."""
    ours = {"batch_size": args.batch_size, "device": device, "input_size": SIZE, "progress": False}
    ways = {
        "naive loop": lambda: _naive(model, paths, device, args.batch_size),
        "ours, workers=0": lambda: extract_features(model, paths, workers=0, **ours),
        f"ours, workers={args.workers} (default)": lambda: extract_features(
            model, paths, workers=args.workers, **ours
        ),
    }
    _naive(model, paths[: args.batch_size], device, args.batch_size)  # warm-up: kernels, caches
    extract_features(model, paths[: args.batch_size], workers=0, **ours)
    rates: dict[str, float] = {label: 0.0 for label in ways}
    for _ in range(args.rounds):
        for label, run in ways.items():
            started = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[label] = max(rates[label], len(paths) / (time.perf_counter() - started))
    baseline = rates["naive loop"]
    return {
        label: {"img_per_s": round(rate, 1), "vs_naive": round(rate / baseline, 2)}
        for label, rate in rates.items()
    }


def _naive(model: torch.nn.Module, paths: list[str], device: torch.device, batch_size: int) -> None:
    transform = build_eval_transform(SIZE)
    model.eval().to(device)
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(read_image(p)) for p in paths[start : start + batch_size]])
            model(batch.to(device)).cpu()


def _calibrated(name: str, paths: list[str], device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative: one pass sets the statistics
    transform = build_eval_transform(SIZE)
    with torch.no_grad():
        model.train()(torch.stack([transform(read_image(p)) for p in paths]))
    return model.eval().to(device)


def _images(root: str | None, scratch: Path, limit: int) -> tuple[list[str], str]:
    if root:
        return expand_inputs([root])[:limit], root
    if SHARED_MARKET.is_dir():
        found = expand_inputs([SHARED_MARKET / "query", SHARED_MARKET / "bounding_box_test"])
        return found[:limit], "../shared/data/Market-1501-mini (query + bounding_box_test)"
    from reid_stra.data.synthetic import make_synthetic_dataset

    synthetic = make_synthetic_dataset(scratch / "synthetic", num_train_ids=1, num_test_ids=40, cameras=4)
    return expand_inputs([synthetic / "bounding_box_test"])[:limit], "synthetic (64x128 crops)"


def _machine(device: torch.device) -> dict[str, Any]:
    info = {
        "cpu": cpu_model_name(),
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _print_markdown(results: dict[str, Any]) -> None:
    print("\n| model | way | img/s | vs naive | torchreid reference (2-core CPU) |")
    print("|---|---|---|---|---|")
    for name, rows in results["models"].items():
        reference = REFERENCE_IMG_PER_S.get(name)
        for label, row in rows.items():
            ref = f"{reference} img/s" if reference and label == "naive loop" else ""
            print(f"| {name} | {label} | {row['img_per_s']:.1f} | {row['vs_naive']:.2f}× | {ref} |")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="mobilenetv2,resnet50", help="comma-separated registered models")
    parser.add_argument("--images", type=int, default=192, help="how many images to extract per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--root", default=None, help="folder of images (default: the shared Market mini)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes for ours")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser.parse_args()


if __name__ == "__main__":
    main()
