"""`--backend`: ONNX Runtime vs PyTorch, the shipped default at 256x128 on this CPU, same run.

Three numbers per backend, interleaved over ``--repeats`` rounds (medians):
- model only: one preprocessed batch of 32 in memory, images/s of the model call alone;
- end to end: ``reid-stra extract`` of ``--images`` real crops (Market-1501-mini's query split) as
  a user runs it, the images/s it reports (model load and the one-time export excluded, the
  decoding included);
- tracker latency: ``Embedder.predict`` of 1, 8 and 16 crops per call (p50 / p95 over 40 calls).
The export cache is filled before timing. ``--int8`` adds a third row: an ``export --int8`` file
calibrated on 256 of Market-1501-mini's *training* crops (seed 0), run with ``--weights`` as a
user runs it. Prints the CPU model and a Markdown table.

    .venv/bin/python -m benchmarks.bench_backend [--images 536] [--repeats 3] [--threads 2] [--int8]
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

import numpy as np
import torch
from PIL import Image

from reid_stra import Embedder
from reid_stra.deploy.quantize import export_int8
from reid_stra.models import load_model
from reid_stra.retrieval.extract import make_forward
from reid_stra.utils.precision import cpu_model_name

ROOT = Path(__file__).resolve().parents[1]
CROPS = ROOT.parent / "shared" / "data" / "Market-1501-mini" / "query"
CLI = str(Path(sys.executable).with_name("reid-stra"))
BACKENDS = ("pytorch", "onnxruntime")


def model_only_rate(embedder: Embedder, batch: torch.Tensor, calls: int) -> float:
    # What extract runs: PyTorch with BatchNorm folded and channels-last; the ONNX session as is.
    forward = make_forward(embedder.model, embedder.device, True, "fp32")
    with torch.inference_mode():
        forward(batch)  # warm-up (and the PyTorch path's first-call setup)
        started = time.perf_counter()
        for _ in range(calls):
            forward(batch)
    return calls * batch.shape[0] / (time.perf_counter() - started)


def predict_latency_ms(embedder: Embedder, crops: list[np.ndarray], calls: int) -> tuple[float, float]:
    """p50 / p95 of ``Embedder.predict`` on one tracker frame's crops (BGR uint8, as cut from a frame)."""
    embedder.predict(crops)  # warm-up
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        embedder.predict(crops)
        times.append((time.perf_counter() - started) * 1000)
    p50, p95 = np.percentile(times, [50, 95])
    return float(p50), float(p95)


def extract_rate(backend: str, images: list[str], folder: Path, weights: Path | None = None) -> float:
    listing = folder / "crops.txt"
    listing.write_text("\n".join(images) + "\n")
    name = "int8" if weights else backend
    out = folder / f"{name}.npy"
    for stale in folder.glob(f"{name}.*"):
        stale.unlink()
    chosen = ["--weights", str(weights)] if weights else ["--backend", backend]
    result = subprocess.run(
        [CLI, "extract", str(listing), "-o", str(out), *chosen, "--workers", "1", "--json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(json.loads(result.stdout)["images_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--int8", action="store_true", help="add an export --int8 file as a third row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    images = sorted(str(p) for p in CROPS.glob("*.jpg"))[: args.images]
    if not images:
        raise SystemExit(f"{CROPS}: no crops (the shared Market-1501-mini split is needed)")
    embedders = {name: Embedder(backend=name, batch_size=32) for name in BACKENDS}  # fills the cache
    rows = list(BACKENDS)
    scratch = tempfile.TemporaryDirectory()
    int8_file = Path(scratch.name) / "default.int8.onnx"
    if args.int8:
        model, info = load_model(None, None)
        train = sorted(str(p) for p in (CROPS.parent / "bounding_box_train").glob("*.jpg"))
        export_int8(model, info, int8_file, train, seed=0, normalize=False)
        embedders["onnxruntime int8"] = Embedder(weights=int8_file, batch_size=32)
        rows.append("onnxruntime int8")
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.standard_normal((32, 3, 256, 128), dtype=np.float32))
    rates: dict[str, dict[str, list[float]]] = {name: {"model": [], "extract": []} for name in rows}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for name in rows:  # interleaved: drifts in machine load hit all alike
                weights = int8_file if name == "onnxruntime int8" else None
                rates[name]["model"].append(model_only_rate(embedders[name], batch, calls=8))
                rates[name]["extract"].append(extract_rate(name, images, Path(folder), weights))
    frame_crops = [np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1].copy() for path in images[:16]]
    latencies = {
        (name, count): predict_latency_ms(embedders[name], frame_crops[:count], calls=40)
        for count in (1, 8, 16)
        for name in rows
    }
    base = {kind: statistics.median(rates["pytorch"][kind]) for kind in ("model", "extract")}
    print(f"CPU: {cpu_model_name()}, {args.threads} threads, {len(images)} crops, {args.repeats} rounds")
    print("| backend | model only, img/s | vs PyTorch | `extract` end to end, img/s | vs PyTorch |")
    print("|---|---|---|---|---|")
    for name in rows:
        model = statistics.median(rates[name]["model"])
        extract = statistics.median(rates[name]["extract"])
        print(
            f"| {name} | {model:.1f} | {model / base['model']:.2f}x | {extract:.1f} | "
            f"{extract / base['extract']:.2f}x |"
        )
    print("\n| backend | `Embedder.predict`, 1 crop p50 / p95 ms | 8 crops | 16 crops |")
    print("|---|---|---|---|")
    for name in rows:
        cells = [f"{latencies[(name, n)][0]:.1f} / {latencies[(name, n)][1]:.1f}" for n in (1, 8, 16)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    scratch.cleanup()


if __name__ == "__main__":
    main()
