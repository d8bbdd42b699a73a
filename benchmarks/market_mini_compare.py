"""StRA vs baseline MobileNetV2 on the shared Market-1501-mini split (issue #6).

Trains every (model, seed) pair with the same recipe from the same ImageNet weights, evaluates
each final model on the split's query/gallery under the standard protocol, and writes
``results.json`` plus a Markdown table. Runs can go in parallel (one process each, e.g. on a GPU).

    python -m benchmarks.market_mini_compare --root ../shared/data/Market-1501-mini \
        --pretrained ../shared/weights/mobilenetv2_imagenet_legacy.pt --out runs/cpu_paper \
        --recipe paper --epochs 12 --height 128 --width 64 --device cpu --workers 1 --threads 1 \
        --parallel 2 --seeds 0 1 --eval-every 4

(the README's table; about 75 minutes on the 2-core CPU). ``--recipe strong`` is the
bag-of-tricks recipe used for ``benchmarks/results/market_mini/`` (first StRA placement, GPU).

Every run resumes where it stopped (``--resume``), so the same command continues a killed job.
Numbers on this split are not comparable with published Market-1501 numbers (other ids, smaller
gallery, no distractors).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RECIPE_OVERRIDES: dict[str, Any] = {
    # The strong-baseline recipe, shortened for a small split: warm-up 5, decay at 60% / 85%.
    "height": 256,
    "width": 128,
    "batch_size": 64,
    "num_instances": 4,
    "diversity_weight": 0.1,
    "eval_every": 0,
}


# The StRA paper's softmax recipe (docs/METHOD.md §6, torchreid's engine, as the reference numbers were
# measured): batch 32, CE-LS only, Adam 3e-4, step decay at 2/3 of the run, 2 fixbase epochs.
PAPER_OVERRIDES: dict[str, Any] = {"batch_size": 32, "fixbase_epochs": 2, "diversity_weight": 0.1}


def recipe_overrides(recipe: str, epochs: int, height: int, width: int) -> dict[str, Any]:
    if recipe == "paper":
        return {
            **PAPER_OVERRIDES,
            "height": height,
            "width": width,
            "epochs": epochs,
            "step_size": max(1, round(epochs * 2 / 3)),
        }
    return {
        **RECIPE_OVERRIDES,
        "height": height,
        "width": width,
        "epochs": epochs,
        "warmup_epochs": max(1, epochs // 12),
        "milestones": [int(epochs * 0.6), int(epochs * 0.85)],
    }


def run_one(args: argparse.Namespace, model: str, seed: int) -> dict[str, Any]:
    """Train (or resume) one run, then evaluate its final model; returns one results row."""
    import torch

    from reid_stra.data.datasets import load_dataset
    from reid_stra.engine.trainer import plan_run, train
    from reid_stra.models import load_model
    from reid_stra.retrieval.evaluation import evaluate_model

    torch.set_num_threads(args.threads)
    out = Path(args.out) / f"{model}_seed{seed}"
    overrides = {
        **recipe_overrides(args.recipe, args.epochs, args.height, args.width),
        "eval_every": args.eval_every,
        "data": "market1501",
        "root": str(args.root),
        "model": model,
        "pretrained": str(args.pretrained),
        "seed": seed,
        "device": args.device,
        "workers": args.workers,
    }
    plan = plan_run(out, recipe=args.recipe, overrides=overrides, resume=True)
    start = time.time()
    summary = train(plan, notice=lambda msg: print(f"[{model} s{seed}] {msg}", flush=True))
    train_s = time.time() - start
    net, info = load_model(None, summary["model_final"], device=args.device)
    dataset = load_dataset("market1501", args.root)
    metrics = evaluate_model(
        net, dataset.query, dataset.gallery, device=args.device, workers=args.workers, progress=False
    )
    row = {
        "model": model,
        "seed": seed,
        "mAP": metrics["mAP"],
        "rank1": metrics["rank1"],
        "rank5": metrics["rank5"],
        "rank10": metrics["rank10"],
        "mINP": metrics["mINP"],
        "train_seconds": train_s,
        "weights": summary["model_final"],
        "weights_sha256": info["weights_sha256"],
        "device": str(args.device),
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }
    (out / "eval.json").write_text(json.dumps(row, indent=2))
    return row


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | seed | mAP | rank-1 | rank-5 | mINP |", "|---|---|---|---|---|---|"]
    for r in rows:
        scores = " | ".join(f"{r[key]:.3f}" for key in ("mAP", "rank1", "rank5", "mINP"))
        lines.append(f"| {r['model']} | {r['seed']} | {scores} |")
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        parts = []
        for key in ("mAP", "rank1", "rank5", "mINP"):
            values = [r[key] for r in mine]
            spread = statistics.pstdev(values) if len(values) > 1 else 0.0
            parts.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        lines.append(f"| **{model} mean ± sd** | {len(mine)} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", required=True, help="Market-1501-layout dataset folder")
    parser.add_argument("--pretrained", required=True, help="ImageNet MobileNetV2 weights file")
    parser.add_argument("--out", default="runs/market_mini")
    parser.add_argument("--models", nargs="+", default=["mobilenetv2", "stra_mobilenetv2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--recipe", choices=["strong", "paper"], default="strong")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=0, help="validate every N epochs while training")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (separate processes)")
    parser.add_argument("--single", nargs=2, metavar=("MODEL", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.single:
        row = run_one(args, args.single[0], int(args.single[1]))
        print(json.dumps(row))
        return 0

    jobs = [(m, s) for s in args.seeds for m in args.models]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "benchmarks.market_mini_compare", *_passthrough(args)]
    running: list[tuple[subprocess.Popen, Any]] = []
    failed = 0
    while jobs or running:
        while jobs and len(running) < args.parallel:
            model, seed = jobs.pop(0)
            log = open(Path(args.out) / f"{model}_seed{seed}.log", "a")  # noqa: SIM115
            proc = subprocess.Popen(
                [*base, "--single", model, str(seed)], stdout=log, stderr=subprocess.STDOUT
            )
            running.append((proc, log))
        time.sleep(2)
        for proc, log in list(running):
            if proc.poll() is not None:
                failed += proc.returncode != 0
                log.close()
                running.remove((proc, log))
    rows = []
    for path in sorted(Path(args.out).glob("*_seed*/eval.json")):
        rows.append(json.loads(path.read_text()))
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=2))
    table = markdown_table(rows)
    (Path(args.out) / "results.md").write_text(table + "\n")
    print(table)
    return 1 if failed else 0


def _passthrough(args: argparse.Namespace) -> list[str]:
    return [
        "--root", str(args.root), "--pretrained", str(args.pretrained), "--out", str(args.out),
        "--epochs", str(args.epochs), "--height", str(args.height), "--width", str(args.width),
        "--device", args.device, "--workers", str(args.workers),
        "--threads", str(args.threads), "--recipe", args.recipe, "--eval-every", str(args.eval_every),
    ]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
