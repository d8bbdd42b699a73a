"""Model speed and memory: StRA against its baseline, as ratios measured in one run.

    .venv/bin/python -m benchmarks.bench_models                  # everything (~10 min on 2 busy cores)
    .venv/bin/python -m benchmarks.bench_models --skip-train --repeats 3 --pairs resnet

1. Inference, batch 32 at 256x128: ``stra_resnet50`` vs ``resnet50`` and ``stra_mobilenetv2`` vs
   ``mobilenetv2``, two ways: eager ``model(x)`` under ``no_grad``, and the path ``reid-stra
   extract`` runs (``reid_stra.retrieval.extract.inference_runner``: BatchNorm folded by torch.fx,
   channels-last, ``inference_mode``). Models of a pair alternate within each repeat; we report
   the median and the minimum of each and the ratios. For ResNet a third model runs alongside:
   ``resnet50`` with layer4's 3x3 convs deleted, the floor that no replacement of them (StRA's
   included) can beat, which shows how much of the time those convs take on this machine, and
   ``stra_resnet50`` aggregating the authors' way (unfold), the same network with their module.
   ``--precisions fp32,bf16`` repeats this part under bf16 autocast.
2. One training step (forward, cross-entropy on 751 classes + 0.1 x diversity, backward, SGD
   with momentum), batch ``--train-batch`` (32), same interleaving.
3. Peak memory: a fresh subprocess per model and mode runs one step and reports its peak RSS
   (``ru_maxrss``) and the growth over its RSS just before the step.
4. Our Local Attention (one zero-padded copy of the values, K² multiply-adds on a flat grid)
   against the authors' way (``F.unfold`` of the values into K² shifted copies, defined in this
   file only): same weights, same output checked; time and peak memory, forward and
   forward+backward, at layer4's shape (32 x 512 x 16 x 8).

Random-init BatchNorm statistics make activations vanish layer by layer into denormal floats,
which are very slow on CPUs and unlike a trained model: every model first gets its BN statistics
from one train-mode pass over the benchmark batch (both models of a pair alike).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_stra.models import build_model
from reid_stra.models.layers import LocalAttention
from reid_stra.utils.precision import cpu_model_name

PAIRS = {"resnet": ("resnet50", "stra_resnet50"), "mobilenet": ("mobilenetv2", "stra_mobilenetv2")}
SIZE = (256, 128)
NUM_CLASSES = 751
LAYER4 = (32, 512, 16, 8)
FLOOR = "resnet50 without layer4 conv2"
UNFOLD = "stra_resnet50 with the authors' unfold"


# ---------------------------------------------------------------------------------------------
# the authors' Local Attention aggregation, for comparison only


class UnfoldLocalAttention(LocalAttention):
    """Same layers and output as ours, aggregated the authors' way: unfold v into K² copies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.attention(x)  # (B, G, K², H, W)
        values = self.value_conv(x)
        batch, channels, height, width = values.shape
        k, g = self.kernel_size, self.modes
        unfolded = F.unfold(values, k, dilation=self.dilation, padding=self.dilation * (k // 2))
        unfolded = unfolded.view(batch, g, channels // g, k * k, height, width)
        return (unfolded * weights.unsqueeze(2)).sum(3).view(batch, channels, height, width)


# ---------------------------------------------------------------------------------------------
# helpers


def calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BN's running statistics to those of one train-mode pass over ``x``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one batch sets the stats exactly
    model.train()
    with torch.no_grad():
        model(x)
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Wall-clock seconds of each function, alternating between them in every repeat."""
    for fn in fns.values():  # warm-up: oneDNN primitive creation, allocator
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def summarize(times: dict[str, list[float]], baseline: str, candidate: str) -> dict[str, Any]:
    med = {name: statistics.median(values) for name, values in times.items()}
    low = {name: min(values) for name, values in times.items()}
    floor = {"floor_ratio_median": med[FLOOR] / med[baseline]} if FLOOR in times else {}
    if FLOOR in times:  # StRA against the floor, and against the authors' module in the same network
        floor["candidate_over_floor_median"] = med[candidate] / med[FLOOR]
    if UNFOLD in times:
        floor["candidate_over_unfold_median"] = med[candidate] / med[UNFOLD]
    return {
        **floor,
        "baseline": baseline,
        "candidate": candidate,
        "median_s": med,
        "min_s": low,
        "ratio_median": med[candidate] / med[baseline],
        "ratio_min": low[candidate] / low[baseline],
        "repeats": len(times[baseline]),
    }


def _load_avg() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------------
# measurements


def _without_conv2(model: nn.Module) -> nn.Module:
    """The baseline with layer4's 3x3 convs removed: the floor of any replacement for them."""
    for block in model.layer4:
        block.conv2 = nn.Identity()
    return model


def _with_unfold_aggregation(model: nn.Module) -> nn.Module:
    """stra_resnet50 whose StRA blocks aggregate the authors' way (same weights and outputs)."""
    for module in model.modules():
        if isinstance(module, LocalAttention):
            module.local = types.MethodType(UnfoldLocalAttention.forward, module)
    return model


def bench_inference(
    pair: tuple[str, str], batch: int, repeats: int, precision: str = "fp32"
) -> list[dict[str, Any]]:
    """Eager and extraction-path timings under ``precision``; for ResNet also the no-conv2 floor
    (``floor_ratio``) and stra_resnet50 with the authors' unfold aggregation."""
    from reid_stra.retrieval.extract import inference_runner
    from reid_stra.utils.precision import Precision

    x = torch.randn(batch, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    models = {}
    for name in pair:
        torch.manual_seed(0)
        models[name] = calibrate(build_model(name), x)
    if pair[0] == "resnet50":
        torch.manual_seed(0)
        models[FLOOR] = calibrate(_without_conv2(build_model("resnet50")), x)
        torch.manual_seed(0)
        models[UNFOLD] = calibrate(_with_unfold_aggregation(build_model("stra_resnet50")), x)
    cpu = torch.device("cpu")
    results = []
    with torch.no_grad(), Precision(precision, "").autocast(cpu):
        eager = {name: (lambda m=m: m(x)) for name, m in models.items()}
        results.append({"mode": f"eager, {precision}", **summarize(interleaved(eager, repeats), *pair)})
    with contextlib.ExitStack() as stack:
        runners = {
            name: stack.enter_context(inference_runner(m, cpu, precision=precision))
            for name, m in models.items()
        }
        fused = {name: (lambda r=r: r(x)) for name, r in runners.items()}
        results.append(
            {
                "mode": f"extract path (BN folded, channels-last), {precision}",
                **summarize(interleaved(fused, repeats), *pair),
            }
        )
    return results


def _train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, labels: torch.Tensor
) -> None:
    optimizer.zero_grad(set_to_none=True)
    out = model(x)
    loss = F.cross_entropy(out["logits"], labels) + 0.1 * out["diversity"]
    loss.backward()
    optimizer.step()


def bench_training(pair: tuple[str, str], batch: int, repeats: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, *SIZE, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    steps = {}
    for name in pair:
        torch.manual_seed(0)
        model = calibrate(build_model(name, num_classes=NUM_CLASSES), x).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        steps[name] = lambda m=model, o=optimizer: _train_step(m, o, x, labels)
    return {"mode": f"train step (batch {batch})", **summarize(interleaved(steps, repeats), *pair)}


def bench_local_attention(repeats: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    ours = LocalAttention(512, 512)
    unfold = UnfoldLocalAttention(512, 512)
    unfold.load_state_dict(ours.state_dict())
    x = torch.randn(*LAYER4)
    for module in (ours, unfold):
        calibrate(module, x)
    with torch.no_grad():
        difference = (ours(x) - unfold(x)).abs().max().item()
    results = []
    with torch.no_grad():
        forward = {"unfold": lambda: unfold(x), "ours": lambda: ours(x)}
        results.append(
            {
                "mode": "forward (eval)",
                "max_abs_difference": difference,
                **summarize(interleaved(forward, repeats), "unfold", "ours"),
            }
        )
    xg = x.clone().requires_grad_()
    ours.train()
    unfold.train()
    both = {"unfold": lambda: unfold(xg).sum().backward(), "ours": lambda: ours(xg).sum().backward()}
    results.append(
        {"mode": "forward+backward (train)", **summarize(interleaved(both, repeats), "unfold", "ours")}
    )
    return results


# ---------------------------------------------------------------------------------------------
# peak memory, one fresh process per measurement


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Restart the peak-RSS counter (Linux >= 4.0), so model building does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def child(kind: str, name: str, batch: int) -> dict[str, Any]:
    """Run one step of ``kind`` in this (fresh) process and report its memory."""
    generator = torch.Generator().manual_seed(0)
    if kind.startswith("local"):
        module_cls = UnfoldLocalAttention if name == "unfold" else LocalAttention
        torch.manual_seed(0)
        module = module_cls(512, 512)
        x = torch.randn(*LAYER4, generator=generator)
        calibrate(module, x)
        if kind == "local-train":
            x.requires_grad_()
            module.train()
            step = lambda: module(x).sum().backward()  # noqa: E731
        else:
            step = lambda: module(x)  # noqa: E731
    else:
        x = torch.randn(batch, 3, *SIZE, generator=generator)
        torch.manual_seed(0)
        model = calibrate(build_model(name, num_classes=NUM_CLASSES), x)
        if kind == "train":
            labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            model.train()
            _train_step(model, optimizer, x, labels)  # optimizer state exists before measuring
            step = lambda: _train_step(model, optimizer, x, labels)  # noqa: E731
        else:
            model.eval()
            step = lambda: model(x)  # noqa: E731
    context = torch.no_grad() if kind in ("infer", "local-infer") else torch.enable_grad()
    reset = _reset_peak()
    before = _status_mb("VmRSS")
    with context:
        step()
    peak = _status_mb("VmHWM")
    return {
        "kind": kind,
        "model": name,
        "batch": batch,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1),
        "growth_mb": round(peak - before, 1),
        "peak_reset": reset,
    }


def measure_memory(kind: str, name: str, batch: int, threads: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_models",
        "--child",
        kind,
        name,
        str(batch),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"kind": kind, "model": name, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# report


def _print_timing(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    header = ("what", "baseline", "candidate", "median s b/c", "min s b/c", "ratio med", "ratio min")
    print("{:42s} {:>12s} {:>17s} {:>16s} {:>16s} {:>9s} {:>9s}".format(*header))
    for row in rows:
        b, c = row["baseline"], row["candidate"]
        medians = f"{row['median_s'][b]:.3f}/{row['median_s'][c]:.3f}"
        minima = f"{row['min_s'][b]:.3f}/{row['min_s'][c]:.3f}"
        print(
            f"{row['mode']:42s} {b:>12s} {c:>17s} {medians:>16s} {minima:>16s} "
            f"{row['ratio_median']:9.3f} {row['ratio_min']:9.3f}"
        )
        if "floor_ratio_median" in row:
            print(f"{'':42s} floor: {FLOOR} / {b}, median ratio {row['floor_ratio_median']:.3f}")
            print(f"{'':42s} {c} / floor, median ratio {row['candidate_over_floor_median']:.3f}")
        if "candidate_over_unfold_median" in row:
            print(f"{'':42s} {c} / {UNFOLD}, median ratio {row['candidate_over_unfold_median']:.3f}")


def _print_memory(rows: list[dict[str, Any]]) -> None:
    print("\npeak memory (fresh process per row; growth = peak RSS - RSS just before the step)")
    for row in rows:
        if "error" in row:
            print(f"{row['kind']:12s} {row['model']:17s} failed: {row['error']}")
            continue
        print(
            f"{row['kind']:12s} {row['model']:17s} batch {row['batch']:3d}  "
            f"peak {row['peak_rss_mb']:8.1f} MB  growth {row['growth_mb']:8.1f} MB"
        )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        kind, name, batch = args.child
        print(json.dumps(child(kind, name, int(batch))))
        return
    machine = f"{cpu_model_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    report: dict[str, Any] = {
        "machine": machine,
        "threads": torch.get_num_threads(),
        "load_before": _load_avg(),
        "command": " ".join(sys.argv),
    }
    print(f"machine: {machine}; torch threads {report['threads']}; load average {report['load_before']}")
    pairs = [PAIRS[p] for p in args.pairs.split(",")]
    inference = [
        row
        for precision in args.precisions.split(",")
        for pair in pairs
        for row in bench_inference(pair, args.batch, args.repeats, precision)
    ]
    report["inference"] = inference
    _print_timing(
        f"inference, batch {args.batch}, {SIZE[0]}x{SIZE[1]} ({args.repeats} interleaved repeats)", inference
    )
    if not args.skip_train:
        training = [bench_training(pair, args.train_batch, args.repeats) for pair in pairs]
        report["training"] = training
        _print_timing(f"training step, batch {args.train_batch}", training)
    if not args.skip_local:
        local = bench_local_attention(args.repeats)
        report["local_attention"] = local
        difference = local[0]["max_abs_difference"]
        _print_timing(
            f"Local Attention at {LAYER4}, authors' unfold vs ours (max |diff| {difference:.1e})", local
        )
    if not args.skip_memory:
        jobs = [("infer", name, args.batch) for pair in pairs for name in pair]
        if not args.skip_train:
            jobs += [("train", name, args.train_batch) for pair in pairs for name in pair]
        if not args.skip_local:
            jobs += [
                (kind, name, LAYER4[0])
                for kind in ("local-infer", "local-train")
                for name in ("unfold", "ours")
            ]
        report["memory"] = [measure_memory(kind, name, batch, args.threads) for kind, name, batch in jobs]
        _print_memory(report["memory"])
    report["load_after"] = _load_avg()
    print(f"\nload average after: {report['load_after']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="inference batch size")
    parser.add_argument("--train-batch", type=int, default=32, help="training batch size")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per measurement")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--pairs", default="resnet,mobilenet", help="comma list of: resnet, mobilenet")
    parser.add_argument("--precisions", default="fp32", help="comma list of: fp32, bf16 (inference)")
    parser.add_argument("--skip-train", action="store_true", help="leave out the training step")
    parser.add_argument("--skip-local", action="store_true", help="leave out the Local Attention comparison")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory subprocesses")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "MODEL", "BATCH"), help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
