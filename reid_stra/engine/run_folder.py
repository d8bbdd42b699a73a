"""What a training run keeps in its folder, apart from the loop that produces it.

The trainer decides *when* (after each epoch, at the end); this module decides *what* and *how*:
the resolved config, ``metrics.jsonl``, the rolling and best checkpoints, ``model_final.pth`` and
the run's summary. Only rank 0 calls the writing methods; every write is
atomic, and the epoch's metrics line is written before its checkpoint, so a kill between the two
repeats the epoch instead of losing its line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from reid_stra.engine import checkpoint as ckpt
from reid_stra.engine.config import save_config
from reid_stra.engine.run_log import read_metrics
from reid_stra.engine.run_plan import CONFIG, FINAL, METRICS, RUN_FILES, RunPlan
from reid_stra.models import save_weights
from reid_stra.utils.atomic import atomic_write_text


class RunFolder:
    """A run's files, its metrics history and its best validation epoch."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.out_dir: Path = plan.out_dir
        self.history: list[dict[str, Any]] = []
        self.best_map: float | None = None
        self.best_epoch: int | None = None

    def restore(self, checkpoint: dict[str, Any], read_history: bool) -> None:
        """The best epoch from ``checkpoint``; the metrics lines up to its epoch (rank 0)."""
        self.best_map = checkpoint.get("best_mAP")
        self.best_epoch = checkpoint.get("best_epoch")
        if read_history:
            self.history = read_metrics(self.out_dir / METRICS, upto_epoch=int(checkpoint["epoch"]))

    def prepare(self) -> None:
        """Fresh runs: remove an overwritten run's files; any run: a killed
        process's unfinished temporary files (we hold the lock). Then save the resolved config."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.plan.checkpoint is None:
            for name in (*RUN_FILES, f"{ckpt.LAST}.damaged", f"{ckpt.PREV}.damaged"):
                (self.out_dir / name).unlink(missing_ok=True)
        for stale in self.out_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        save_config(self.plan.config, self.out_dir / CONFIG, recipe=self.plan.recipe)

    def end_epoch(self, epoch: int, record: dict[str, Any], state: Callable[[], dict[str, Any]]) -> None:
        """Log ``record``, then checkpoint ``state()`` (built after the best epoch is updated)."""
        improved = "mAP" in record and (self.best_map is None or record["mAP"] > self.best_map)
        if improved:
            self.best_map, self.best_epoch = record["mAP"], epoch + 1
        self.history.append(record)
        atomic_write_text(self.out_dir / METRICS, "".join(json.dumps(r) + "\n" for r in self.history))
        saved = state()
        ckpt.save_training_checkpoint(self.out_dir, saved)
        if improved:
            ckpt.save_best_checkpoint(self.out_dir, saved)

    def export_final(self, model: nn.Module) -> None:
        """``model_final.pth``: the packed weights and what the run was (dataset, recipe, last epoch)."""
        config = self.plan.config
        last = self.history[-1] if self.history else {}
        meta = {
            "dataset": config.data,
            "epochs": config.epochs,
            "recipe": self.plan.recipe,
            "final": {k: v for k, v in last.items() if isinstance(v, (int, float))},
            "best_mAP": self.best_map,
            "best_epoch": self.best_epoch,
        }
        model.eval()
        save_weights(model, self.out_dir / FINAL, meta=meta)

    def summary(self, finished: bool, start_epoch: int) -> dict[str, Any]:
        """Where everything is and how far the run got (what ``train`` returns and prints)."""
        last = self.history[-1] if self.history else {}
        out = self.out_dir
        return {
            "out": str(out),
            "finished": finished,
            "epochs_done": int(last.get("epoch", start_epoch)),
            "epochs": self.plan.config.epochs,
            "final": last,
            "best_mAP": self.best_map,
            "best_epoch": self.best_epoch,
            "checkpoint": str(out / ckpt.LAST),
            "best_checkpoint": str(out / ckpt.BEST) if (out / ckpt.BEST).exists() else None,
            "model_final": str(out / FINAL) if finished else None,
            "metrics_log": str(out / METRICS),
            "config": str(out / CONFIG),
        }
