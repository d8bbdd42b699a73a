"""`export --int8`: speed and accuracy of the int8 file against fp32, in both domains, same run.

For each calibration seed the shipped default is exported to int8 (``export_int8``: 256 crops of
Market-1501-mini's *training* identities, 64 more held out; never crops of an evaluated split),
then ``reid-stra evaluate`` scores the fp32 model (PyTorch, fp32) and each int8 file on Market's
test split and on CUHK03-detected's query/gallery. Speed: model-only images/s of one preprocessed
batch of 32, interleaved over ``--repeats`` rounds (medians): PyTorch fp32 as ``extract`` runs it
(BatchNorm folded, channels-last), ONNX Runtime fp32 (the cached export) and ONNX Runtime int8.
Results go to ``benchmarks/results/int8/summary.json``; a Markdown table is printed.

    .venv/bin/python -m benchmarks.bench_int8 [--seeds 0 1 2] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reid_stra.deploy.backend import cached_export
from reid_stra.deploy.onnx_backend import load_onnx_model
from reid_stra.deploy.quantize import export_int8
from reid_stra.models import load_model
from reid_stra.retrieval.extract import make_forward
from reid_stra.utils.precision import cpu_model_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MARKET, CUHK03 = SHARED / "Market-1501-mini", SHARED / "CUHK03-detected"
RESULTS = ROOT / "benchmarks" / "results" / "int8"
CLI = str(Path(sys.executable).with_name("reid-stra"))


def evaluate(weights: Path, backend: str) -> dict[str, dict[str, float]]:
    """mAP / rank-1 on both test splits, one ``reid-stra evaluate`` call (fp32 arithmetic)."""
    command = [CLI, "evaluate", "--weights", str(weights), "--json", "--data", "market1501"]
    command += ["--root", str(MARKET), "--root", str(CUHK03), "--backend", backend, "--precision", "fp32"]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    runs = result["runs"]  # one per --root, in order
    return {
        root.name: {"mAP": run["mAP"], "rank1": run["rank1"]}
        for root, run in zip((MARKET, CUHK03), runs, strict=True)
    }


def model_only_rate(forward, batch: torch.Tensor, calls: int) -> float:
    with torch.inference_mode():
        forward(batch)
        started = time.perf_counter()
        for _ in range(calls):
            forward(batch)
    return calls * batch.shape[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model, info = load_model(None, None)
    crops = sorted(str(p) for p in (MARKET / "bounding_box_train").glob("*.jpg"))
    if not crops:
        raise SystemExit(f"{MARKET}: no training crops (the shared Market-1501-mini split is needed)")
    accuracy = {"fp32": evaluate(Path(info["weights"]), "pytorch")}
    reports = {}
    for seed in args.seeds:
        path = args.out / f"mobilenetv2_int8_seed{seed}.onnx"
        result = export_int8(model, info, path, crops, seed=seed, normalize=False, notice=print)
        reports[seed] = result.report.as_dict()
        accuracy[f"int8_seed{seed}"] = evaluate(path, "onnxruntime")
    fp32_onnx = cached_export(model, info)
    forwards = {
        "PyTorch fp32": make_forward(model, torch.device("cpu"), True, "fp32"),
        "ONNX Runtime fp32": make_forward(load_onnx_model(fp32_onnx)[0], torch.device("cpu")),
        "ONNX Runtime int8": make_forward(
            load_onnx_model(args.out / f"mobilenetv2_int8_seed{args.seeds[0]}.onnx")[0], torch.device("cpu")
        ),
    }
    batch = torch.from_numpy(np.random.default_rng(0).standard_normal((32, 3, 256, 128), dtype=np.float32))
    rates: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(args.repeats):
        for name, forward in forwards.items():  # interleaved: load drifts hit all alike
            rates[name].append(model_only_rate(forward, batch, calls=8))
    speed = {name: statistics.median(values) for name, values in rates.items()}
    summary = {
        "cpu": cpu_model_name(),
        "threads": args.threads,
        "seeds": args.seeds,
        "model_only_images_per_s": speed,
        "accuracy": accuracy,
        "int8_reports": reports,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for seed in args.seeds:  # the files themselves are not kept: re-made by this script
        for stale in args.out.glob(f"mobilenetv2_int8_seed{seed}.onnx*"):
            stale.unlink()
    base = speed["PyTorch fp32"]
    print(f"CPU: {cpu_model_name()}, {args.threads} threads, {args.repeats} rounds, batch 32, 256x128")
    print("| backend | model only, img/s | vs PyTorch fp32 |")
    print("|---|---|---|")
    for name, rate in speed.items():
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x |")
    print("\n| model | Market mAP | Market rank-1 | CUHK03 mAP | CUHK03 rank-1 |")
    print("|---|---|---|---|---|")
    int8_rows = [accuracy[f"int8_seed{seed}"] for seed in args.seeds]
    for label, rows in (("fp32", [accuracy["fp32"]]), (f"int8, seeds {args.seeds}", int8_rows)):
        cells = []
        for domain in (MARKET.name, CUHK03.name):
            for metric in ("mAP", "rank1"):
                values = [row[domain][metric] for row in rows]
                spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
                cells.append(f"{statistics.mean(values):.3f}{spread}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
