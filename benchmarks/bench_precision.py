"""Precision: bf16 autocast against fp32 on this CPU, and ONNX Runtime against PyTorch, as
ratios measured in one run (interleaved repeats, one thread).

    .venv/bin/python -m benchmarks.bench_precision            # ~15 min on one core of an AMX CPU
    .venv/bin/python -m benchmarks.bench_precision --json out.json [--compile]

1. Inference, batch 32 at 256x128, the path `reid-stra extract` runs (BatchNorm folded,
   channels-last, inference_mode): fp32 vs bf16, per model.
2. One training step at 256x128, batch 32 (forward, CE on 751 classes, backward, Adam), eager,
   channels-last (what the trainer runs on CPU): fp32 vs bf16 autocast, the four main models.
3. Where a StRA block's training time goes (forward + backward of each part of block 15 of
   stra_mobilenetv2, batch 32, 16x8 map), fp32 and bf16: the op-level answer to "why does StRA
   gain less from bf16".
4. `extract` end to end (decode, transform, forward, write a feature file) of real crops
   (`../shared/data/Market-1501-mini/query`), fp32 vs bf16, the four main models.
5. Feature fidelity on real crops (every 10th query file): min and mean cosine of bf16 features
   to fp32 ones, shipped models; and `evaluate` of the shipped default on the split's
   query/gallery in fp32 and bf16 (mAP, rank-1).
6. ONNX Runtime vs PyTorch (fp32) embedding the same batch, shipped default model.
7. With ``--compile``: torch.compile (inductor) of the stra_mobilenetv2 training step against
   eager, bf16, with the compile time (minutes; off by default).
Prints what `--precision auto` picks here and why.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from benchmarks.bench_models import interleaved
from reid_stra.models import build_model
from reid_stra.retrieval.extract import make_forward
from reid_stra.utils.precision import cpu_bf16_units, cpu_model_name, resolve_precision

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


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


def _backward_of(fn, x: torch.Tensor, bf16: bool):
    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fn(x)
        out.float().sum().backward()

    return run


def stra_parts(repeats: int) -> dict[str, dict[str, float]]:
    """Forward + backward of each part of one StRA block (block 15 of stra_mobilenetv2), ms."""
    import torch.nn.functional as F

    from reid_stra.models.layers.aggregate import local_aggregate

    block = build_model("stra_mobilenetv2", num_classes=751).train().features[15].conv[-3][0]
    stra = block.stra
    x = torch.randn(32, 960, 16, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    plain = x.detach().contiguous().requires_grad_()

    def aggregation(t: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            weights = torch.softmax(torch.randn(32, 8, 9, 16, 8), dim=2).requires_grad_()
        return local_aggregate(weights, t, 3)

    parts = {
        "depthwise 3x3 conv (the plain block)": (
            lambda t: F.conv2d(t, block.weight, None, 1, 1, 1, t.shape[1]), x),
        "Local Attention kernel (mask_conv, gather, softmax)": (stra.attention, plain),
        "aggregation (local_aggregate)": (aggregation, plain),
        "Mode Attention": (stra.moe, plain),
        "whole StRA block (depthwise + StRA)": (block, x),
    }  # fmt: skip
    out: dict[str, dict[str, float]] = {}
    for label, (fn, tensor) in parts.items():
        times = _interleaved(
            {"fp32": _backward_of(fn, tensor, False), "bf16": _backward_of(fn, tensor, True)}, repeats
        )
        out[label] = {key: value * 1000 for key, value in times.items()}
        print(f"StRA part {label}: fp32 {out[label]['fp32']:.1f} ms, bf16 {out[label]['bf16']:.1f} ms",
              flush=True)  # fmt: skip
    return out


def _query_crops(step: int) -> list[Path]:
    query = SHARED / "data" / "Market-1501-mini" / "query"
    return sorted(query.glob("*.jpg"))[::step] if query.is_dir() else []


def extract_end_to_end(names: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """`extract` as a user runs it (decode, transform, forward, write), seconds per run."""
    import tempfile

    from reid_stra.models import load_model, shipped_weights
    from reid_stra.retrieval.extract_file import extract_to_file

    paths = [str(path) for path in _query_crops(4)]
    if not paths:
        return {}
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            if shipped_weights(name) is not None:
                model, info = load_model(name)
            else:  # speed does not depend on the weights' values
                model = build_model(name).eval()
                info = {"model": name, "weights": None, "weights_sha256": None,
                        "cfg": model.pretrained_cfg, "backend": "pytorch"}  # fmt: skip

            def run(precision: str, model=model, info=info) -> None:
                extract_to_file(model, info, paths, Path(folder) / f"{precision}.npy", batch_size=32,
                                workers=0, progress=False, precision=precision)  # fmt: skip

            times = _interleaved({"fp32": lambda run=run: run("fp32"), "bf16": lambda run=run: run("bf16")},
                                 repeats)  # fmt: skip
            out[name] = {**times, "images": len(paths), "speedup": times["fp32"] / times["bf16"]}
            print(f"extract {len(paths)} crops, {name}: fp32 {times['fp32']:.2f} s, "
                  f"bf16 {times['bf16']:.2f} s, {out[name]['speedup']:.2f}x", flush=True)  # fmt: skip
    return out


def fidelity() -> dict[str, dict[str, float]]:
    import reid_stra

    paths = _query_crops(10)
    if not paths:
        return {}
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


def evaluate_fidelity() -> dict[str, dict[str, float]]:
    """The shipped default evaluated on the split in fp32 and bf16 (the issue allows 0.003 mAP)."""
    from reid_stra.data.datasets import load_dataset
    from reid_stra.models import load_model
    from reid_stra.retrieval.evaluation import evaluate_model

    root = SHARED / "data" / "Market-1501-mini"
    if not root.is_dir():
        return {}
    data = load_dataset("market1501", root, splits=("query", "gallery"))
    model, info = load_model()
    out = {}
    for precision in ("fp32", "bf16"):
        result = evaluate_model(
            model, data.query, data.gallery, workers=0, progress=False, precision=precision
        )
        out[precision] = {"mAP": result["mAP"], "rank1": result["rank1"]}
        print(f"evaluate {info['model']} (shipped) in {precision}: mAP {result['mAP']:.4f}, "
              f"rank-1 {result['rank1']:.4f}", flush=True)  # fmt: skip
    return out


def compile_trial(repeats: int) -> dict[str, float]:
    """torch.compile (inductor) of the stra_mobilenetv2 bf16 training step vs eager, same model."""
    import time

    model = build_model("stra_mobilenetv2", num_classes=751).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 3e-4)
    compiled = torch.compile(model)
    x = torch.randn(32, 3, 256, 128).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 751, (32,))
    started = time.perf_counter()
    _train_step(compiled, optimizer, x, y, True)()
    compile_s = time.perf_counter() - started
    times = _interleaved(
        {
            "eager": _train_step(model, optimizer, x, y, True),
            "compiled": _train_step(compiled, optimizer, x, y, True),
        },
        repeats,
    )
    out = {**times, "compile_s": compile_s, "speedup": times["eager"] / times["compiled"]}
    print(f"torch.compile stra_mobilenetv2 train step (bf16): first call {compile_s:.0f} s; "
          f"eager {times['eager']:.3f} s, compiled {times['compiled']:.3f} s ({out['speedup']:.2f}x)",
          flush=True)  # fmt: skip
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


MODELS = ["mobilenetv2", "stra_mobilenetv2", "resnet50", "stra_resnet50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"CPU: {cpu_model_name()}; bf16 units: {cpu_bf16_units()}; threads: {args.threads}")
    print("auto picks:", resolve_precision("auto", cpu).describe(), "|",
          resolve_precision("auto", cpu, training=True).describe())  # fmt: skip
    results = {
        "cpu": cpu_model_name(),
        "bf16_units": cpu_bf16_units(),
        "threads": args.threads,
        "auto": {
            "inference": resolve_precision("auto", cpu).describe(),
            "training": resolve_precision("auto", cpu, training=True).describe(),
        },
        "inference": inference(MODELS, args.repeats),
        "training": {} if args.skip_train else training(MODELS, args.repeats),
        "stra_parts": stra_parts(args.repeats + 2),
        "extract": extract_end_to_end(MODELS, args.repeats),
        "fidelity": fidelity(),
        "evaluate": evaluate_fidelity(),
        "onnx": onnx_vs_pytorch(args.repeats),
        "compile": compile_trial(args.repeats) if args.compile else {},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
