"""Planning a run before anything is written: the config to train with, and whether and where to resume.

The output-folder policy lives here: which files mark a folder as holding a run, when
``--resume`` starts afresh, and when ``--overwrite`` is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reid_stra.engine import checkpoint as ckpt
from reid_stra.engine.config import (
    RETIRED_AMP_NOTE,
    TrainConfig,
    config_from_dict,
    load_config_file,
    mentions_retired_amp,
    resolve_config_and_recipe,
)
from reid_stra.errors import ReidError

METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
FINAL = "model_final.pth"
TEST = "test.json"  # the test split's metrics of a run validated on held-out ids
# Files that mark a folder as holding a run; --overwrite removes exactly these.
RUN_FILES = (ckpt.LAST, ckpt.PREV, ckpt.BEST, METRICS, CONFIG, FINAL, TEST)


@dataclass
class RunPlan:
    """What :func:`plan_run` decided: the config to train with and where to resume from."""

    config: TrainConfig
    out_dir: Path
    recipe: str | None
    resume_path: Path | None = None
    checkpoint: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def plan_run(
    out_dir: str | os.PathLike,
    *,
    recipe: str | None = None,
    config_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> RunPlan:
    """Resolve the config and check the output folder; nothing is written yet.

    Fresh run: defaults < recipe < config file < overrides. Resumed run: the checkpoint's own
    config < config file < overrides (so ``--epochs 120`` extends a run); ``--recipe`` is ignored.
    ``resume=True`` with no checkpoint starts a fresh run (the same command works for the first
    launch and every restart of a preemptible job).
    """
    out_dir = Path(out_dir)
    overrides = dict(overrides or {})
    if resume and overwrite:
        raise ReidError("--resume and --overwrite: choose one (continue the run, or replace it)")
    notes: list[str] = []
    if mentions_retired_amp(overrides, load_config_file(config_file) if config_file else None):
        notes.append(RETIRED_AMP_NOTE)
    found = None
    existing = [name for name in RUN_FILES if (out_dir / name).exists()]
    if resume:
        found = ckpt.find_resume_checkpoint(out_dir, notes.append, quarantine=_env_rank() == 0)
        if found is None and set(existing) <= {CONFIG, METRICS}:
            # Killed before its first checkpoint was complete: at most one epoch to lose, so the
            # restart starts afresh.
            existing = []
        if found is None and existing:
            raise ReidError(
                f"--out {out_dir}: holds a run ({', '.join(existing)}) but no checkpoint to resume from; "
                "use --overwrite to start again, or choose another --out"
            )
        if found is None:
            notes.append(f"--resume: no checkpoint in {out_dir}; starting a fresh run")
    if found is not None:
        path, checkpoint = found
        base = dict(checkpoint["config"])
        if config_file:
            file_values = dict(load_config_file(config_file))
            file_values.pop("recipe", None)
            base.update(file_values)
        base.update(overrides)
        config = config_from_dict(base, f"checkpoint {path}")
        if recipe:
            notes.append(f"--recipe {recipe}: ignored when resuming (the run keeps its saved config)")
        notes.append(f"resuming from {path} (epoch {checkpoint['epoch']} of {config.epochs} done)")
        plan = RunPlan(config, out_dir, checkpoint.get("recipe"), path, checkpoint, notes)
    else:
        if existing and not overwrite:
            raise ReidError(
                f"--out {out_dir}: already holds a run ({', '.join(existing)}); "
                "pass --resume to continue it, --overwrite to replace it, or choose another --out"
            )
        config, recipe_name = resolve_config_and_recipe(recipe, config_file, overrides)
        given = set(overrides) | (set(load_config_file(config_file)) if config_file else set())
        if config.fixbase_epochs > config.epochs and "fixbase_epochs" not in given:
            # The recipe's fixbase epochs assume its full schedule; a shorter run keeps at least
            # one epoch that trains every layer.
            clamped = max(0, config.epochs - 1)
            notes.append(
                f"--fixbase-epochs: the {recipe_name} recipe's {config.fixbase_epochs} is more than "
                f"--epochs {config.epochs}; training only the new layers for {clamped} "
                "(pass --fixbase-epochs N to choose)"
            )
            config.fixbase_epochs = clamped
        plan = RunPlan(config, out_dir, recipe_name, notes=notes)
    plan.config.validate()
    return plan


def _env_rank() -> int:
    return int(os.environ.get("RANK", "0"))
