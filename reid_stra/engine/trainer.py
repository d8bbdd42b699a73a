"""The training loop: one run from a :class:`TrainConfig` into an output folder.

What a run guarantees:

* the output folder holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON
  line per epoch), ``last.pth``/``prev.pth`` (resumable, written atomically), ``best.pth`` (best
  validation mAP) and ``model_final.pth`` (exported weights);
* ``resume=True`` continues exactly where the last complete checkpoint stopped: same weights,
  optimizer, schedule, sampler order and random streams, so an interrupted run ends with the
  same weights as an uninterrupted one (bit for bit on CPU);
* under ``torchrun`` every process runs this same code on its share of each epoch's batches
  (DDP); only rank 0 writes files and prints.

Planning (config, output folder, resume point) is :mod:`run_plan`; building the dataset, model
and loader is :mod:`builders`; the log is :mod:`run_log`. Longer than the ~450 lines other
modules keep to, because :class:`TrainingRun` is one state machine (phase, optimizer, schedule,
random streams, DDP wrapping, checkpoints) whose parts must change together to keep resume
bit-identical; split apart they would share that state through arguments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_stra.data.datasets.holdout import hold_out_ids
from reid_stra.engine import checkpoint as ckpt
from reid_stra.engine.builders import (
    build_loader,
    build_optimization,
    build_train_model,
    fixbase_layers,
    is_under,
    load_train_dataset,
    metric_feature_dim,
    new_layer_names,
    reraise_worker_errors_in,
    seed_loader_epoch,
)
from reid_stra.engine.distributed import (
    all_reduce_sums,
    gather_rng_states,
    seed_everything,
)
from reid_stra.engine.hooks import TrainerHook
from reid_stra.engine.interruption import resumable
from reid_stra.engine.losses import LossWeights, ModelWithLoss, ReidLoss
from reid_stra.engine.run_folder import RunFolder
from reid_stra.engine.run_log import epoch_line
from reid_stra.engine.run_plan import TEST, RunPlan, plan_run
from reid_stra.errors import Interrupted, ReidError
from reid_stra.retrieval.evaluation import evaluate_model
from reid_stra.utils.atomic import atomic_write_text, exclusive_lock
from reid_stra.utils.distributed import (
    DistContext,
    barrier,
    cleanup_distributed,
    init_distributed,
)
from reid_stra.utils.notice import Notice, silent
from reid_stra.utils.precision import resolve_precision
from reid_stra.utils.progress import task_progress


def train(
    plan: RunPlan,
    *,
    notice: Notice = silent,
    stop_after_epochs: int | None = None,
    hooks: Sequence[TrainerHook] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) training as planned; return a summary of the run.

    ``stop_after_epochs`` ends this call after that many epochs, like a kill between epochs
    would (for time-boxed jobs); the run is resumable from there. ``hooks`` are called around
    every step and epoch; ``progress`` shows bars (on rank 0).
    """
    ctx = init_distributed(plan.config.device)
    try:
        notice = notice if ctx.is_main else silent
        for note in plan.notes:
            notice(note)
        if ctx.is_main:
            with exclusive_lock(plan.out_dir / ckpt.LAST):
                return TrainingRun(plan, ctx, notice, hooks, progress).fit(stop_after_epochs)
        return TrainingRun(plan, ctx, notice, hooks, progress).fit(stop_after_epochs)
    finally:
        cleanup_distributed()


class TrainingRun:
    """The state of one training process; built once, then :meth:`fit` loops over epochs.

    :meth:`set_phase` and :meth:`train_step` are public for the training benchmark, which
    times exactly the step training runs.
    """

    def __init__(
        self,
        plan: RunPlan,
        ctx: DistContext,
        notice: Notice,
        hooks: Sequence[TrainerHook] = (),
        progress: bool = True,
    ) -> None:
        self.plan, self.ctx, self.notice = plan, ctx, notice
        self.hooks = tuple(hooks)
        self.show_progress = progress and ctx.is_main
        self.config = config = plan.config
        self.out_dir = plan.out_dir
        self.device = ctx.device
        if config.batch_size % ctx.world_size:
            raise ReidError(
                f"--batch-size {config.batch_size}: must divide evenly over {ctx.world_size} processes"
            )
        self.per_rank_batch = config.batch_size // ctx.world_size
        seed_everything(config.seed)  # identical model init on every rank
        self.dataset = load_train_dataset(config)
        for warning in self.dataset.warnings:  # an alias read, names of another dataset...
            notice(f"warning: {warning}")
        # Validation ranks held-out training ids (the dataset's query/gallery are then the test,
        # evaluated once after the last epoch) or, without a holdout, the dataset's query/gallery.
        self.val_split = (self.dataset.query, self.dataset.gallery)
        self.test_split: tuple[list, list] | None = None
        if config.val_ids:
            self.dataset, holdout = hold_out_ids(self.dataset, config.val_ids)
            self.val_split = (holdout.query, holdout.gallery)
            self.test_split = (self.dataset.query, self.dataset.gallery)
        self.model = build_train_model(
            config, self.dataset.num_train_pids, fresh=plan.checkpoint is None, notice=notice
        )
        # Mixed precision: autocast for the model's forward only; losses, BatchNorm statistics and
        # the optimizer stay float32. fp16 (CUDA) needs the gradient scaler, bf16 does not.
        self.precision = resolve_precision(config.precision, self.device, training=True)
        self.use_amp = self.precision.dtype is not None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.name == "fp16")
        # channels-last: oneDNN's convolution kernels are much faster in it on CPU, cuDNN's under
        # mixed precision (BENCHMARKS.md, "Precision"); the weights' values are unchanged.
        self.memory_format = (
            torch.channels_last
            if self.device.type == "cpu" or (self.use_amp and self.device.type == "cuda")
            else torch.contiguous_format
        )
        self.model.to(self.device, memory_format=self.memory_format)
        self.criterion = ReidLoss(
            LossWeights(**{k: getattr(config, k) for k in LossWeights.__dataclass_fields__}),
            num_classes=self.dataset.num_train_pids,
            feat_dim=metric_feature_dim(self.model),
        ).to(self.device)
        self.step_module = ModelWithLoss(self.model, self.criterion)
        # Parameters the model freezes by design (the BNNeck bias) stay frozen in every phase.
        self.always_frozen = {id(p) for p in self.step_module.parameters() if not p.requires_grad}
        self.optimizer, self.scheduler = build_optimization(self.model, self.criterion, config)
        self.loader = build_loader(config, self.dataset, ctx, self.per_rank_batch, self.device)
        self.new_layers = fixbase_layers(self.model, config) if config.fixbase_epochs else ()
        self.start_epoch = 0
        self.folder = RunFolder(plan)  # what rank 0 writes: metrics, checkpoints, the final model
        # Rank-specific streams for augmentation; restored from the checkpoint when resuming.
        seed_everything(config.seed + 1 + ctx.rank)
        if plan.checkpoint is not None:
            self._restore(plan.checkpoint)
        self._ddp: nn.Module | None = None
        self._ddp_phase: bool | None = None

    # -- setup ----------------------------------------------------------------------------------

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["state_dict"])
        if checkpoint.get("loss_state"):
            self.criterion.load_state_dict(checkpoint["loss_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        # The rate is a pure function of the epoch under the (possibly extended) config's schedule.
        self.scheduler.resume_at(int(checkpoint["epoch"]))
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        if checkpoint.get("sampler"):
            self.loader.sampler.load_state_dict(checkpoint["sampler"])
        self.start_epoch = int(checkpoint["epoch"])
        self.folder.restore(checkpoint, read_history=self.ctx.is_main)
        rng = checkpoint.get("rng") or []
        saved_world = checkpoint.get("world_size", 1)
        if len(rng) > self.ctx.rank and saved_world == self.ctx.world_size:
            ckpt.restore_rng_state(rng[self.ctx.rank])
        else:
            self.notice(
                f"resuming with {self.ctx.world_size} process(es) instead of {saved_world}: "
                "random augmentation will not repeat the interrupted run exactly"
            )

    def fit(self, stop_after_epochs: int | None) -> dict[str, Any]:
        config = self.config
        if self.ctx.is_main:
            self.folder.prepare()
        barrier(self.ctx)
        validation = all(self.val_split) and config.eval_every > 0
        if config.eval_every > 0 and not validation:
            self.notice("no query/gallery split in this dataset: training without validation")
        if config.val_ids:
            self.notice(
                f"validating on {config.val_ids} held-out training ids ({len(self.val_split[0])} query, "
                f"{len(self.val_split[1])} gallery images); the test split is evaluated after the last epoch"
            )
        self.notice(
            f"training {config.model} on {config.data} ({len(self.dataset.train)} images, "
            f"{self.dataset.num_train_pids} ids) for {config.epochs} epochs on {self.device}"
            + (f" x {self.ctx.world_size} processes" if self.ctx.enabled else "")
            + f"; {self.precision.describe()}"
        )
        epochs_run = 0
        for epoch in range(self.start_epoch, config.epochs):
            if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                break
            with resumable(partial(self._interrupted, epoch)):
                for hook in self.hooks:
                    hook.before_epoch(epoch)
                record = self._train_epoch(epoch)
                last = epoch + 1 == config.epochs
                if validation and ((epoch + 1) % config.eval_every == 0 or last):
                    record.update(self._validate())
            self.scheduler.step()
            self._end_epoch(epoch, record)  # an interrupt here: the checkpoint write is atomic
            for hook in self.hooks:
                hook.after_epoch(epoch, record, self.model)
            epochs_run += 1
        finished = self.start_epoch + epochs_run >= config.epochs
        test = self._test() if finished and self.test_split and all(self.test_split) else None
        if finished and self.ctx.is_main:
            self.folder.export_final(self.model)
        barrier(self.ctx)
        summary = self.folder.summary(finished, self.start_epoch)
        return {**summary, "rank": self.ctx.rank, "world_size": self.ctx.world_size, "test": test}

    def _interrupted(self, epoch: int) -> Interrupted:
        """What a stop during ``epoch`` keeps: the checkpoint of the epochs before it."""
        if epoch == 0:
            return Interrupted(
                f"stopped in epoch 1/{self.config.epochs}; no epoch finished yet", resumable=True
            )
        return Interrupted(
            f"stopped in epoch {epoch + 1}/{self.config.epochs}; epochs 1-{epoch} are kept in "
            f"{self.out_dir / 'last.pth'}",
            resumable=True,
        )

    def set_phase(self, epoch: int) -> nn.Module:
        """Train mode, with everything but the new layers frozen during the fixbase epochs.

        Frozen layers also stay in eval mode, so their BatchNorm statistics keep their
        ImageNet values (as torchreid's fixbase does).
        """
        fixbase = epoch < self.config.fixbase_epochs
        self.step_module.train()
        if fixbase:
            for name, module in self.model.named_modules():
                if not any(True for _ in module.children()) and not is_under(name, self.new_layers):
                    module.eval()
        for name, param in self.model.named_parameters():
            trainable = not fixbase or is_under(name, self.new_layers)
            param.requires_grad_(trainable and id(param) not in self.always_frozen)
        if self._ddp_phase is not fixbase or self._ddp is None:
            # DDP registers the trainable parameters when wrapped: re-wrap when that set changes.
            self._ddp = None
            self._ddp = self._wrap(self.step_module)
            self._ddp_phase = fixbase
        return self._ddp

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.ctx.enabled:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        config = self.config
        step = self.set_phase(epoch)
        seed_loader_epoch(self.loader, config.seed, epoch, self.ctx.rank)
        lr = self.optimizer.param_groups[0]["lr"]
        # Sums stay on the device: one host sync per progress refresh, not per batch.
        sums: dict[str, torch.Tensor] = {}
        images_seen = 0
        data_wait = 0.0
        frozen = epoch < config.fixbase_epochs
        started = time.perf_counter()
        with self._progress(epoch, frozen) as advance:
            batch_start = time.perf_counter()
            for batch, (images, pids, _camids, indices) in enumerate(reraise_worker_errors_in(self.loader)):
                data_wait += time.perf_counter() - batch_start
                loss, parts = self.train_step(step, images, pids)
                for hook in self.hooks:
                    hook.after_step(epoch, batch, indices)
                n = images.shape[0]
                images_seen += n
                for key, value in (("loss", loss.detach()), *parts.items()):
                    sums[key] = sums[key] + value * n if key in sums else value * n
                if batch % 10 == 0:
                    info = f"loss {loss.item():.3f}" + (
                        f" acc {parts['acc'].item():.2f}" if "acc" in parts else ""
                    )
                    advance(0, info=info)
                advance(n * self.ctx.world_size)
                batch_start = time.perf_counter()
        elapsed = time.perf_counter() - started
        host = {key: value.item() for key, value in sums.items()}
        totals = all_reduce_sums(self.ctx, {**host, "_images": float(images_seen), "_wait": data_wait})
        count = max(1.0, totals.pop("_images"))
        wait = totals.pop("_wait") / self.ctx.world_size
        if not np.isfinite(totals.get("loss", 0.0)):
            raise ReidError(
                f"epoch {epoch + 1}: the loss became {totals['loss']}; lower --lr (or train in fp32: "
                "--precision fp32); --resume continues from the last good checkpoint"
            )
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        record.update({key: value / count for key, value in totals.items()})
        record.update(
            images=int(count),
            images_per_s=count / max(elapsed, 1e-9),
            epoch_time_s=elapsed,
            data_wait_s=wait,
            fixbase=frozen,
        )
        return record

    def train_step(
        self, step: nn.Module, images: torch.Tensor, pids: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One optimization step (under the run's precision); returns the loss and its parts."""
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        targets = pids.to(self.device, non_blocking=True)
        with self.precision.autocast(self.device):
            loss, parts = step(images, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss, parts

    def _progress(self, epoch: int, frozen: bool):
        """A bar with loss, accuracy, img/s and ETA on rank 0; silent elsewhere."""
        title = f"epoch {epoch + 1}/{self.config.epochs}" + (" (fixbase)" if frozen else "")
        total = len(self.loader) * self.per_rank_batch * self.ctx.world_size
        return task_progress(title, total=total, unit="img", show=self.show_progress)

    def _test(self) -> dict[str, Any]:
        """The dataset's query/gallery, once, after a run validated on held-out ids (``test.json``)."""
        result = self._validate(self.test_split)
        if self.ctx.is_main:
            atomic_write_text(self.out_dir / TEST, json.dumps(result, indent=2) + "\n")
            self.notice(
                f"test (the dataset's query/gallery, once): mAP {result['mAP']:.4f}, "
                f"rank-1 {result['rank1']:.4f}"
            )
        return result

    def _validate(self, split: tuple[list, list] | None = None) -> dict[str, Any]:
        """Rank 0 evaluates on ``split`` (default: validation; L2-normalized, Euclidean); the others wait."""
        query, gallery = split or self.val_split
        result: dict[str, Any] = {}
        if self.ctx.is_main:
            self.model.eval()
            metrics = evaluate_model(
                self.model,
                query,
                gallery,
                device=self.device,
                batch_size=self.config.eval_batch_size,
                workers=self.config.workers,
                progress=self.show_progress,
            )
            cmc = np.asarray(metrics["cmc"])
            result = {
                "mAP": float(metrics["mAP"]),
                "rank1": float(cmc[0]),
                "rank5": float(cmc[min(4, len(cmc) - 1)]),
                "mINP": float(metrics.get("mINP", float("nan"))),
            }
        barrier(self.ctx)
        return result

    def _end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Log the epoch, then checkpoint it (so a kill between the two repeats the epoch)."""
        rng_states = gather_rng_states(self.ctx)
        if self.ctx.is_main:
            self.folder.end_epoch(epoch, record, lambda: self._state(epoch + 1, rng_states))
            self.notice(epoch_line(record, self.config.epochs))
        barrier(self.ctx)

    def _state(self, epochs_done: int, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.model.pretrained_cfg
        return {
            "model": self.config.model,
            "model_kwargs": dict(cfg.kwargs),
            "default_cfg": cfg.to_dict(),  # the file key of every version
            "num_classes": self.dataset.num_train_pids,
            "state_dict": self.model.state_dict(),
            "loss_state": self.criterion.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": {**self.loader.sampler.state_dict(), "epoch": epochs_done},
            "rng": rng_states,
            "world_size": self.ctx.world_size,
            "epoch": epochs_done,
            "config": self.config.to_dict(),
            "recipe": self.plan.recipe,
            "best_mAP": self.folder.best_map,
            "best_epoch": self.folder.best_epoch,
        }


__all__ = [
    "RunPlan",
    "TrainingRun",
    "plan_run",
    "train",
    "new_layer_names",
]
