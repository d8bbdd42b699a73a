"""Precision: bf16 autocast against fp32 on this CPU, and ONNX Runtime against PyTorch, as
ratios measured in one run (interleaved repeats, one thread).

    .venv/bin/python -m benchmarks.bench_precision            # ~5 min on a busy 2-core CPU
    .venv/bin/python -m benchmarks.bench_precision --json out.json

1. Inference, batch 32 at 256x128, the path `reid-stra extract` runs (BatchNorm folded,
   channels-last, inference_mode): fp32 vs bf16, per model.
2. One training step at 256x128, batch 32 (forward, CE on 751 classes, backward, Adam), eager,
   channels-last (what the trainer runs on CPU): fp32 vs bf16 autocast.
3. Feature fidelity on real crops (`../shared/data/Market-1501-mini/query`, every 10th file):
   min and mean cosine of bf16 features to fp32 ones, shipped models.
4. ONNX Runtime vs PyTorch (fp32) embedding the same batch, shipped default model.
Prints what `--precision auto` picks here and why.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from benchmarks.bench_models import interleaved
from reid_stra.models import build_model
from reid_stra.retrieval.extract import make_forward
from reid_stra.utils.precision import cpu_bf16_units, resolve_precision

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, alternating them (bench_models' interleaving)."""
    return {name: statistics.median(times) for name, times in interleaved(fns, repeats).items()}


def _infer_step(forward, x: torch.Tensor, bf16: bool):
    def run() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            forward(x)

    return run


def _train_step(model, optimizer, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)["logits"]
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return run


def inference(names: list[str], repeats: int) -> dict[str, dict[str, float]]:
    x = torch.randn(32, 3, 256, 128)
    out = {}
    for name in names:
        model = build_model(name).eval()
        with torch.no_grad():  # trained-like BN statistics (random ones produce denormals)
            model.train()(x)
            model.eval()
        forward = make_forward(model, torch.device("cpu"), True)
        times = _interleaved(
            {"fp32": _infer_step(forward, x, False), "bf16": _infer_step(forward, x, True)}, repeats
        )
        out[name] = {**times, "speedup": times["fp32"] / times["bf16"]}
        print(f"inference {name}: fp32 {times['fp32']:.3f} s, bf16 {times['bf16']:.3f} s, "
              f"{out[name]['speedup']:.2f}x", flush=True)  # fmt: skip
    return out


def training(names: list[str], repeats: int) -> dict[str, dict[str, float]]:
    out = {}
    for name in names:
        model = build_model(name, num_classes=751).train().to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), 3e-4)
        x = torch.randn(32, 3, 256, 128).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 751, (32,))
        times = _interleaved(
            {
                "fp32": _train_step(model, optimizer, x, y, False),
                "bf16": _train_step(model, optimizer, x, y, True),
            },
            repeats,
        )
        out[name] = {**times, "speedup": times["fp32"] / times["bf16"]}
        print(f"train step {name}: fp32 {times['fp32']:.3f} s, bf16 {times['bf16']:.3f} s, "
              f"{out[name]['speedup']:.2f}x", flush=True)  # fmt: skip
    return out


def fidelity() -> dict[str, dict[str, float]]:
    import reid_stra

    query = SHARED / "data" / "Market-1501-mini" / "query"
    if not query.is_dir():
        return {}
    paths = sorted(query.glob("*.jpg"))[::10]
    out = {}
    for name in ("mobilenetv2", "stra_mobilenetv2"):
        fp32 = reid_stra.Embedder(name, precision="fp32").embed(paths)
        bf16 = reid_stra.Embedder(name, precision="bf16").embed(paths)
        cosine = (fp32 * bf16).sum(1)
        out[name] = {
            "images": len(paths),
            "min_cosine": float(cosine.min()),
            "mean_cosine": float(cosine.mean()),
        }
        print(f"bf16 vs fp32 features, {name}, {len(paths)} real crops: min cosine {cosine.min():.4f}, "
              f"mean {cosine.mean():.4f}", flush=True)  # fmt: skip
    return out


def onnx_vs_pytorch(repeats: int) -> dict[str, float]:
    import tempfile

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {}
    import reid_stra
    from reid_stra.deploy.export import export_model
    from reid_stra.models import load_model

    model, info = load_model(None, None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        result = export_model(model, info, path)
        torch_embedder = reid_stra.Embedder(precision="fp32")
        onnx_embedder = reid_stra.Embedder(weights=path)
        batch = torch.randint(0, 255, (32, 3, *info["cfg"].input_size), dtype=torch.uint8)
        times = _interleaved(
            {
                "pytorch": lambda: torch_embedder.embed(batch),
                "onnxruntime": lambda: onnx_embedder.embed(batch),
            },
            repeats,
        )
    out = {**times, "ratio": times["pytorch"] / times["onnxruntime"], "onnx_mb": result.size_bytes / 1e6}
    print(
        f"embed 32 crops at {info['cfg'].input_size}: PyTorch {times['pytorch']:.3f} s, ONNX Runtime "
        f"{times['onnxruntime']:.3f} s ({out['ratio']:.2f}x); file {out['onnx_mb']:.1f} MB",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"CPU: {_cpu_model()}; bf16 units: {cpu_bf16_units()}; threads: {args.threads}")
    print("auto picks:", resolve_precision("auto", cpu).describe(), "|",
          resolve_precision("auto", cpu, training=True).describe())  # fmt: skip
    results = {
        "cpu": _cpu_model(),
        "bf16_units": cpu_bf16_units(),
        "inference": inference(
            ["mobilenetv2", "stra_mobilenetv2", "resnet50", "stra_resnet50"], args.repeats
        ),
        "training": {} if args.skip_train else training(["mobilenetv2", "stra_mobilenetv2"], args.repeats),
        "fidelity": fidelity(),
        "onnx": onnx_vs_pytorch(args.repeats),
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
