"""What StRA needs on MobileNetV2 (issue 16, step 3): controlled variants of one recipe.

Every variant is the session-2 controlled comparison's StRA run
(``benchmarks/configs/paper_stra_mobilenetv2_128x64.yaml``: paper recipe, 128x64, 12 epochs,
2 fixbase epochs, diversity 0.1, fp32) with one thing changed, trained with the same seeds; the
baseline and the unchanged StRA run of that comparison are the controls.

    .venv/bin/python -m benchmarks.stra_variants run div0 tail --seeds 0 1 --parallel 2
    .venv/bin/python -m benchmarks.stra_variants summarize

``run`` trains each (variant, seed) as ``reid-stra train --config ... --resume`` in
``runs/<variant>_seed<seed>`` (one thread each, ``--parallel`` at a time; a finished run is skipped
and a killed one continues). ``summarize`` copies each finished run's config and per-epoch log to
``benchmarks/results/stra_variants/``, measures its modes on real crops
(:mod:`benchmarks.mode_stats`) and writes ``summary.json`` and ``summary.md`` (mean and sd of the
final mAP / rank-1 over seeds; mAP at each evaluated epoch). Numbers on this split are not
comparable with published Market-1501 numbers.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks.mode_stats import mode_stats
from benchmarks.variant_runs import mean_sd, run_queue, variant_parser

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "configs" / "paper_stra_mobilenetv2_128x64.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "stra_variants"
SESSION2 = ROOT / "benchmarks" / "results" / "market_mini_cpu"

# One change each against the config (diversity 0.1, StRA after the depthwise convs of 14-17).
VARIANTS: dict[str, list[str]] = {
    "control": [],
    "baseline": ["--model", "mobilenetv2"],
    "div0": ["--diversity-weight", "0"],
    "div0.01": ["--diversity-weight", "0.01"],
    "blocks15_16": ["--set", "model_kwargs={stra_blocks: [15, 16]}"],
    "tail": ["--set", "model_kwargs={stra_placement: tail}"],
    "stra_lr10": ["--set", "stra_lr_factor=10"],
    # Counter-measure to modes locked onto corners: Mode Attention pools off the outer ring only.
    "interior": ["--set", "model_kwargs={stra_pool_border: false}"],
    # Issue 11: does bf16 autocast train as well as fp32 (same recipe and seeds)?
    "baseline_bf16": ["--model", "mobilenetv2", "--precision", "bf16"],
}
# The controls as session 2 trained them (same config, another CPU), read from their logs.
SESSION2_RUNS = {"control": "stra_mobilenetv2_seed{seed}", "baseline": "mobilenetv2_seed{seed}"}


def run_dir(runs: Path, variant: str, seed: int) -> Path:
    return runs / f"{variant}_seed{seed}"


def finished(out: Path) -> bool:
    return (out / "model_final.pth").is_file()


def train_command(variant: str, seed: int, out: Path) -> list[str]:
    cli = str(Path(sys.executable).with_name("reid-stra"))
    base = [cli, "train", "--config", str(CONFIG), "--seed", str(seed), "--out", str(out), "--resume"]
    return [*base, *VARIANTS[variant]]


def run(variants: list[str], seeds: list[int], parallel: int, runs: Path) -> None:
    """Train every missing (variant, seed), ``parallel`` processes at a time, one thread each."""
    jobs = [
        (run_dir(runs, v, s), train_command(v, s, run_dir(runs, v, s)))
        for v in variants
        for s in seeds
        if not finished(run_dir(runs, v, s))
    ]
    run_queue(jobs, parallel, runs)


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(runs: Path, seeds: list[int]) -> dict:
    """Copy logs into benchmarks/results, measure modes, write summary.json and summary.md."""
    rows: dict[str, dict] = {}
    for variant in VARIANTS:
        per_seed = {}
        for seed in seeds:
            out = run_dir(runs, variant, seed)
            if finished(out):
                kept = RESULTS / out.name
                kept.mkdir(parents=True, exist_ok=True)
                for name in ("config.yaml", "metrics.jsonl"):
                    shutil.copyfile(out / name, kept / name)
                log = read_log(out / "metrics.jsonl")
                has_stra = not variant.startswith("baseline")
                modes = mode_stats(str(out / "model_final.pth"), 24) if has_stra else None
                per_seed[seed] = {"source": f"runs/{out.name}", "log": log, "modes": modes}
            elif variant in SESSION2_RUNS:
                log_path = SESSION2 / SESSION2_RUNS[variant].format(seed=seed) / "metrics.jsonl"
                if log_path.is_file():
                    source = str(log_path.parent.relative_to(ROOT))
                    per_seed[seed] = {"source": source, "log": read_log(log_path)}
        if per_seed:
            rows[variant] = {
                str(seed): {
                    "source": run["source"],
                    "evaluations": {
                        str(e["epoch"]): {k: e[k] for k in ("mAP", "rank1")} for e in run["log"] if "mAP" in e
                    },
                    "final": {k: run["log"][-1][k] for k in ("mAP", "rank1", "mINP") if k in run["log"][-1]},
                    "train_acc": run["log"][-1]["acc"],
                    "diversity": run["log"][-1].get("diversity"),
                    "img_per_s": statistics.median(e["images_per_s"] for e in run["log"][2:] or run["log"]),
                    "modes": run.get("modes"),
                }
                for seed, run in per_seed.items()
            }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "summary.md").write_text(markdown(rows) + "\n")
    return rows


def markdown(rows: dict) -> str:
    lines = [
        "| variant | seeds | mAP (final) | rank-1 | mAP ep 4 | mAP ep 8 | modes stuck | peak motion "
        "| border mass |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, seeds in rows.items():
        runs = list(seeds.values())
        final = [r["final"].get("mAP") for r in runs if "mAP" in r["final"]]
        rank1 = [r["final"].get("rank1") for r in runs if "rank1" in r["final"]]
        at = {ep: [r["evaluations"][ep]["mAP"] for r in runs if ep in r["evaluations"]] for ep in ("4", "8")}
        modes = [r["modes"] for r in runs if r.get("modes")]
        stuck = ", ".join(f"{m['stuck']}/{m['modes']}" for m in modes) or "-"
        motion = mean_sd([m["mean_peak_motion"] for m in modes])
        border = mean_sd([m["mean_border_mass"] for m in modes])
        cells = [variant, ",".join(seeds), mean_sd(final), mean_sd(rank1), mean_sd(at["4"]), mean_sd(at["8"])]
        lines.append("| " + " | ".join([*cells, stuck, motion, border]) + " |")
    return "\n".join(lines)


def main() -> None:
    args = variant_parser(__doc__.splitlines()[0], VARIANTS, ("summarize",), ROOT / "runs")
    if args.action == "run":
        run(args.variants, args.seeds, args.parallel, args.runs)
    else:
        print(markdown(summarize(args.runs, args.seeds)))


if __name__ == "__main__":
    main()
