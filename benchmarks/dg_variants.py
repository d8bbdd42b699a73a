"""Domain generalization on MobileNetV2 (issue 25): controlled variants, scored in two domains.

Every variant is the shipped default's last stage (``benchmarks/configs/dg_stage3_mobilenetv2.yaml``:
7 epochs at 256x128 with batch-hard triplet, from the stage-2 packed file) with one change, trained
with the same seeds, then evaluated on Market-1501-mini's test split (in-domain: identities never
trained on) and on CUHK03-detected's query/gallery (cross-domain: cameras never seen).

    .venv/bin/python -m benchmarks.dg_variants run ibn colour --seeds 0 --parallel 2
    .venv/bin/python -m benchmarks.dg_variants evaluate
    .venv/bin/python -m benchmarks.dg_variants summarize

``run`` trains each (variant, seed) as ``reid-stra train --config ... --resume`` in
``runs/dg_<variant>_seed<seed>`` (one thread each, ``--parallel`` at a time; a finished run is
skipped, a killed one continues). ``evaluate`` scores each finished run, and the earlier stages'
packed files (no training: is the last stage over-fitting Market?), on both datasets with one
``reid-stra evaluate`` call (``eval.json`` in the run folder). ``summarize`` copies configs, logs and
evaluations to ``benchmarks/results/dg_variants/`` and writes ``summary.json`` / ``summary.md``
(mean ± sample sd over seeds). Numbers on these splits are not comparable with published ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.pack_weights import pack
from benchmarks.variant_runs import mean_sd, run_queue, variant_parser

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "configs" / "dg_stage3_mobilenetv2.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "dg_variants"
SHARED = ROOT.parent / "shared" / "data"
MARKET, CUHK03 = SHARED / "Market-1501-mini", SHARED / "CUHK03-detected"
# Packed files as committed: the default's stages (the start of every variant is stage 2) and the
# shipped StRA model, (commit, path).
DEFAULT_PATH = "weights/mobilenetv2_market1501mini.pth"
STAGES = {
    "stage1_128x64": ("4a66cce", DEFAULT_PATH),
    "stage2_256x128": ("7bcc262", DEFAULT_PATH),
    "stage3_shipped": ("42ecd5a", DEFAULT_PATH),
    "stra_shipped": ("a747217", "weights/stra_mobilenetv2_market1501mini.pth"),
}
START = "stage2_256x128"
# Inference-time input low-pass factor (the training crops' native 64x128 vs the 256x128 input).
LOWPASS = 2

# One change each against the config (the last two: two changes).
VARIANTS: dict[str, list[str]] = {
    "control": [],
    "colour": ["--set", "color_jitter=true", "--set", "random_grayscale=0.1"],
    "ibn": ["--set", "model_kwargs={last_stride: 1, ibn: true}"],
    "mixstyle": ["--set", "model_kwargs={last_stride: 1, mixstyle: true}"],
    "gem": ["--set", "model_kwargs={last_stride: 1, pooling: gem}"],
    "emb512": ["--neck", "fc", "--set", "model_kwargs={last_stride: 1, embedding_dim: 512}"],
    # Two changes: the shipped MixStyle with each of the two next-best single changes.
    "mixstyle_ibn": ["--set", "model_kwargs={last_stride: 1, mixstyle: true, ibn: true}"],
    # One change from the shipped recipe (MixStyle): pooling, and the embedding size.
    "mixstyle_gem": ["--set", "model_kwargs={last_stride: 1, mixstyle: true, pooling: gem}"],
    "mixstyle_emb512": [
        "--neck",
        "fc",
        "--set",
        "model_kwargs={last_stride: 1, mixstyle: true, embedding_dim: 512}",
    ],
    "mixstyle_colour": [
        "--set",
        "model_kwargs={last_stride: 1, mixstyle: true}",
        "--set",
        "color_jitter=true",
        "--set",
        "random_grayscale=0.1",
    ],
}


def run_dir(runs: Path, variant: str, seed: int) -> Path:
    return runs / f"dg_{variant}_seed{seed}"


def finished(out: Path) -> bool:
    return (out / "model_final.pth").is_file()


def stage_file(runs: Path, stage: str) -> Path:
    """A committed stage's packed file, written once from git history into ``runs/dg_start``."""
    path = runs / "dg_start" / f"{stage.split('_')[0]}.pth"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        commit, weights = STAGES[stage]
        blob = subprocess.run(
            ["git", "show", f"{commit}:{weights}"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        partial = path.with_suffix(".tmp")
        partial.write_bytes(blob)
        partial.replace(path)
    return path


def cli() -> str:
    return str(Path(sys.executable).with_name("reid-stra"))


def run(variants: list[str], seeds: list[int], parallel: int, runs: Path) -> None:
    """Train every missing (variant, seed), ``parallel`` processes at a time, one thread each."""
    start = stage_file(runs, START)
    jobs = []
    for variant in variants:
        for seed in seeds:
            out = run_dir(runs, variant, seed)
            if not finished(out):
                command = [cli(), "train", "--config", str(CONFIG), "--pretrained", str(start)]
                command += ["--seed", str(seed), "--out", str(out), "--resume", *VARIANTS[variant]]
                jobs.append((out, command))
    run_queue(jobs, parallel, runs, cwd=ROOT)


def evaluate_file(weights: Path, out: Path, extra: list[str] | None = None) -> dict:
    """Both domains in one ``reid-stra evaluate`` call; the JSON is kept as ``out``."""
    if out.is_file():
        return json.loads(out.read_text())
    command = [cli(), "evaluate", "--weights", str(weights), "--json"]
    command += ["--data", "market1501", "--root", str(MARKET), "--root", str(CUHK03)]  # Market's layout
    result = subprocess.run([*command, *(extra or [])], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise SystemExit(f"evaluate {weights}: {result.stderr.strip()}")
    out.write_text(result.stdout)
    return json.loads(result.stdout)


def with_lowpass(path: Path) -> Path:
    """The same weights with the input low-pass recorded as a model option (packed once)."""
    out = path.with_name(f"{path.stem}_lowpass{LOWPASS}.pth")
    if not out.is_file():
        pack(str(path), str(out), model_options={"input_lowpass": LOWPASS})
    return out


def evaluate(runs: Path, seeds: list[int]) -> None:
    """Both domains for every stage and finished run, as trained and with the input low-pass
    (a stage already scored in ``benchmarks/results/`` is not scored again)."""
    lowpass = f"+lowpass{LOWPASS}"
    kept = [s for s in STAGES if all((RESULTS / f"{s}{x}.domains.json").is_file() for x in ("", lowpass))]
    files = [(stage, stage_file(runs, stage)) for stage in STAGES if stage not in kept]
    for variant in VARIANTS:
        for seed in seeds:
            out = run_dir(runs, variant, seed)
            if finished(out):
                files.append((out.name, out / "model_final.pth"))
    for name, path in files:
        for label, weights in ((name, path), (f"{name}+lowpass{LOWPASS}", with_lowpass(path))):
            result = evaluate_file(weights, weights.with_suffix(".domains.json"))
            print(label, summary_line(result), flush=True)


DOMAINS = {"Market-1501-mini": "market", "CUHK03-detected": "cuhk03"}  # root folder -> column


def per_dataset(result: dict) -> dict[str, dict]:
    """``{"market": {...}, "cuhk03": {...}}`` from a two-dataset ``evaluate --json``."""
    return {
        DOMAINS[Path(run["source"]["root"]).name]: {k: run[k] for k in ("mAP", "rank1", "rank5", "mINP")}
        for run in result["runs"]
    }


def summary_line(result: dict) -> str:
    return "  ".join(
        f"{name}: mAP {m['mAP']:.3f} rank-1 {m['rank1']:.3f}" for name, m in per_dataset(result).items()
    )


def summarize(runs: Path, seeds: list[int]) -> dict:
    """Copy each evaluated model's two-domain JSON (and each run's config and log) into
    ``benchmarks/results/dg_variants/`` and write ``summary.json`` / ``summary.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    lowpass = f"+lowpass{LOWPASS}"
    for stage in STAGES:
        path = stage_file(runs, stage)
        for label, stem in ((stage, path.stem), (stage + lowpass, f"{path.stem}_lowpass{LOWPASS}")):
            domains, result = path.with_name(f"{stem}.domains.json"), RESULTS / f"{label}.domains.json"
            if domains.is_file():
                shutil.copyfile(domains, result)
            if result.is_file():  # scored now, or by an earlier session (kept in the results)
                rows[label] = {"packed": per_dataset(json.loads(result.read_text()))}
    for variant in VARIANTS:
        for seed in seeds:
            out = run_dir(runs, variant, seed)
            for label, stem in (
                (variant, "model_final"),
                (variant + lowpass, f"model_final_lowpass{LOWPASS}"),
            ):
                domains, kept = out / f"{stem}.domains.json", RESULTS / out.name
                if domains.is_file():
                    kept.mkdir(parents=True, exist_ok=True)
                    for name in ("config.yaml", "metrics.jsonl", domains.name):
                        shutil.copyfile(out / name, kept / name)
                elif (kept / domains.name).is_file():  # the run folder is gone; its results are kept
                    domains = kept / domains.name
                else:
                    continue
                rows.setdefault(label, {})[str(seed)] = per_dataset(json.loads(domains.read_text()))
    (RESULTS / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "summary.md").write_text(markdown(rows) + "\n")
    return rows


def markdown(rows: dict) -> str:
    lines = [
        "| variant | seeds | Market mAP | Market rank-1 | CUHK03 mAP | CUHK03 rank-1 |",
        "|---|---|---|---|---|---|",
    ]
    for variant, seeds in rows.items():
        cells = [variant, ",".join(seeds)]
        for dataset in ("market", "cuhk03"):
            for metric in ("mAP", "rank1"):
                cells.append(mean_sd([s[dataset][metric] for s in seeds.values() if dataset in s]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = variant_parser(__doc__.splitlines()[0], VARIANTS, ("evaluate", "summarize"), ROOT / "runs")
    if args.action == "run":
        run(args.variants, args.seeds, args.parallel, args.runs)
    elif args.action == "evaluate":
        evaluate(args.runs, args.seeds)
    else:
        print(markdown(summarize(args.runs, args.seeds)))


if __name__ == "__main__":
    main()
