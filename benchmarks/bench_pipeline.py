"""Where `extract`'s time goes: decode, resize, batch normalize, forward, write, per image, on this CPU.

Each stage is timed alone, in this process, on the same ``--images`` real crops (Market-1501-mini's
``bounding_box_test``) with the shipped default at its 256x128 input, exactly the calls
`extract` makes (``read_image``, ``resize_to_uint8``, ``normalize_batch``, the backend's forward
on batches of 32, ``write_features``). Decoding and resizing run on one core (one DataLoader
worker or the main process); the forward uses ``--threads``. Then ``reid-stra extract`` of the
same crops (``--workers 1``) as a user runs it, interleaved ``--repeats`` times with the
stage timings (medians), so that the measured rate sits beside what the stages add up to:

- serial bound: one image after another through every stage;
- overlap bound: decoding on a separate core beside the model, so the slower of the two sets the
  pace. On a 2-core machine that core is also one of the model's two threads, so neither bound is
  reachable exactly; the table shows how close `extract` comes.

    .venv/bin/python -m benchmarks.bench_pipeline [--images 1000] [--repeats 3] [--threads 2] [--int8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_backend import extract_rate
from reid_stra import Embedder
from reid_stra.data.images import read_image
from reid_stra.data.transforms import normalize_batch, resize_to_uint8
from reid_stra.retrieval.extract import make_forward
from reid_stra.retrieval.features import FeatureMeta, save_features
from reid_stra.utils.precision import cpu_model_name

ROOT = Path(__file__).resolve().parents[1]
CROPS = ROOT.parent / "shared" / "data" / "Market-1501-mini" / "bounding_box_test"
CLI = str(Path(sys.executable).with_name("reid-stra"))
BATCH = 32


def stage_times(embedder: Embedder, paths: list[str], scratch: Path) -> dict[str, float]:
    """Milliseconds per image of each stage (the forward's batches of ``BATCH``)."""
    size = tuple(embedder.info["cfg"].input_size)
    started = time.perf_counter()
    images = [read_image(path) for path in paths]
    decode = time.perf_counter() - started
    started = time.perf_counter()
    resized = [resize_to_uint8(image, size) for image in images]
    resize = time.perf_counter() - started
    batches = [torch.stack(resized[i : i + BATCH]) for i in range(0, len(resized), BATCH)]
    started = time.perf_counter()
    inputs = [
        normalize_batch(batch, embedder.info["cfg"].mean, embedder.info["cfg"].std) for batch in batches
    ]
    normalize = time.perf_counter() - started
    forward_fn = make_forward(embedder.model, embedder.device, True, "fp32")
    with torch.inference_mode():
        forward_fn(inputs[0])  # warm-up
        started = time.perf_counter()
        features = [np.asarray(forward_fn(batch).float()) for batch in inputs]
        forward = time.perf_counter() - started
    started = time.perf_counter()
    out = scratch / "stage.npy"
    meta = FeatureMeta(paths=list(paths), model="mobilenetv2")
    save_features(out, np.concatenate(features), meta)
    write = time.perf_counter() - started
    per_image = 1000 / len(paths)
    return {
        "decode": decode * per_image,
        "resize": resize * per_image,
        "normalize": normalize * per_image,
        "forward": forward * per_image,
        "write": write * per_image,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--int8", action="store_true", help="add an export --int8 row (calibrated on train crops)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the medians here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    paths = sorted(str(p) for p in CROPS.glob("*.jpg"))[: args.images]
    if not paths:
        raise SystemExit(f"{CROPS}: no crops (the shared Market-1501-mini split is needed)")
    scratch_dir = tempfile.TemporaryDirectory()
    scratch = Path(scratch_dir.name)
    rows: dict[str, tuple[Embedder, Path | None]] = {
        name: (Embedder(backend=name, batch_size=BATCH), None) for name in ("pytorch", "onnxruntime")
    }
    if args.int8:
        from reid_stra.deploy.quantize import export_int8
        from reid_stra.models import load_model

        model, info = load_model(None, None)
        train = sorted(str(p) for p in (CROPS.parent / "bounding_box_train").glob("*.jpg"))
        int8_file = scratch / "default.int8.onnx"
        export_int8(model, info, int8_file, train, seed=0, normalize=False)
        rows["onnxruntime int8"] = (Embedder(weights=int8_file, batch_size=BATCH), int8_file)
    measured: dict[str, dict[str, list[float]]] = {name: {} for name in rows}
    for _ in range(args.repeats):
        for name, (embedder, weights) in rows.items():  # interleaved: load drifts hit every row alike
            for stage, value in stage_times(embedder, paths, scratch).items():
                measured[name].setdefault(stage, []).append(value)
            rate = extract_rate(name, paths, scratch, weights)  # the CLI, as bench_backend runs it
            measured[name].setdefault("extract", []).append(1000 / rate)
    medians = {
        name: {k: statistics.median(v) for k, v in stages.items()} for name, stages in measured.items()
    }
    print(f"CPU: {cpu_model_name()}, {args.threads} threads, {len(paths)} crops, {args.repeats} rounds")
    print(
        "| backend | decode | resize | normalize | forward | write | serial bound | overlap bound "
        "| `extract` measured | vs model only |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in medians.items():
        serial = sum(m[s] for s in ("decode", "resize", "normalize", "forward", "write"))
        overlap = max(m["decode"] + m["resize"], m["normalize"] + m["forward"]) + m["write"]
        cells = [f"{m[s]:.2f}" for s in ("decode", "resize", "normalize", "forward", "write")]
        print(
            f"| {name} | " + " | ".join(cells) + f" | {1000 / serial:.0f} img/s | {1000 / overlap:.0f} img/s "
            f"| {1000 / m['extract']:.0f} img/s | {m['forward'] / m['extract']:.2f}x |"
        )
    print("(stage columns: milliseconds per image; model only = the forward column alone)")
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu_model_name(), "threads": args.threads, "ms": medians}, indent=2)
        )
    scratch_dir.cleanup()


if __name__ == "__main__":
    main()
