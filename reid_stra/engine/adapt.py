"""Unsupervised domain adaptation: teach a model a user's cameras from their unlabeled crops.

Cluster Contrast ReID (Dai et al., 2021), on our parts. Each round:

1. embed every target image with the current model (:func:`reid_stra.retrieval.extract.extract`);
2. cluster the features into pseudo-identities (DBSCAN on k-reciprocal Jaccard distances,
   :mod:`pseudo_labels`); outliers sit the round out;
3. build a memory of the clusters' centroids (or, camera-aware, of (cluster, camera) proxies,
   :mod:`cluster_memory`) and train ``iters`` P x K batches of the clustered images against it.

Identity ids in file names are never read: only paths and (optionally) camera ids enter. After
every round ``last.pth`` (model, optimizer, round, random state; the trainer's checkpoint format,
so every command loads it) is written atomically, so a killed run continues with ``resume`` from
the last finished round and ends bit-identical to an uninterrupted one on CPU. The run folder holds
``adapt.json`` (the card: source weights, target images, settings, statistics per round),
``metrics.jsonl`` and, at the end, ``model_final.pth``.

Under ``torchrun`` (as ``train``) every process embeds its share of the images, rank 0 clusters
the gathered features and shares the labels, and training is DDP over global P x K batches split
across the processes; the memory is updated with every process's batch, so it stays the same on
all of them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_stra.data.datasets import Sample
from reid_stra.data.loading import build_train_loader, reraise_worker_errors
from reid_stra.data.transforms import build_train_transform
from reid_stra.engine import checkpoint as ckpt
from reid_stra.engine.adapt_plan import AdaptPlan, check_plan
from reid_stra.engine.cluster_memory import CameraAwareMemory, ClusterMemory, cluster_centroids
from reid_stra.engine.distributed import (
    all_reduce_sums,
    gather_rng_states,
    seed_everything,
)
from reid_stra.engine.interruption import resumable
from reid_stra.engine.pseudo_labels import (
    centre_per_camera,
    cluster_features,
    cluster_stats,
    density_radius,
    renumber,
)
from reid_stra.errors import Interrupted, ReidError
from reid_stra.models import save_weights
from reid_stra.models.build import load_model
from reid_stra.retrieval.evaluation import evaluate_model
from reid_stra.retrieval.extract import Preprocess, extract
from reid_stra.utils.atomic import atomic_write_json, atomic_write_text, exclusive_lock
from reid_stra.utils.distributed import (
    DistContext,
    all_gather_objects,
    barrier,
    broadcast_from_main,
    cleanup_distributed,
    init_distributed,
)
from reid_stra.utils.notice import Notice, silent
from reid_stra.utils.precision import resolve_precision
from reid_stra.utils.progress import task_progress

CARD = "adapt.json"
METRICS = "metrics.jsonl"
FINAL = "model_final.pth"


def adapt(
    plan: AdaptPlan,
    *,
    resume: bool = False,
    notice: Notice = silent,
    stop_after_rounds: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) the adaptation; returns the card and this process's ``rank`` (0 alone).

    ``stop_after_rounds`` ends this call after that many rounds, as a kill between rounds would
    (time-boxed jobs); the run continues with ``resume=True``. ``progress`` shows bars (rank 0).
    """
    check_plan(plan)
    ctx = init_distributed(plan.config.device)
    try:
        if plan.config.batch_size % ctx.world_size:
            raise ReidError(
                f"--batch-size {plan.config.batch_size}: must divide evenly over {ctx.world_size} processes"
            )
        if not ctx.is_main:
            return _AdaptRun(plan, ctx, resume, silent, progress).fit(stop_after_rounds)
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(plan.out_dir / ckpt.LAST):
            return _AdaptRun(plan, ctx, resume, notice, progress).fit(stop_after_rounds)
    finally:
        cleanup_distributed()


class _AdaptRun:
    def __init__(
        self, plan: AdaptPlan, ctx: DistContext, resume: bool, notice: Notice, progress: bool = True
    ) -> None:
        self.show_progress = progress and ctx.is_main
        self.plan, self.config, self.notice, self.ctx = plan, plan.config, notice, ctx
        self.out_dir = plan.out_dir
        self.device = ctx.device
        found = ckpt.find_resume_checkpoint(self.out_dir, notice) if resume else None
        if not resume and (self.out_dir / ckpt.LAST).exists():
            raise ReidError(
                f"{self.out_dir}: holds an adaptation run already; add --resume to continue it or "
                "choose another --out"
            )
        checkpoint = found[1] if found else None
        source = checkpoint["source"] if checkpoint else None
        seed_everything(self.config.seed)
        self.model, info = load_model(
            plan.model, source["weights"] if source else plan.weights, device=str(self.device)
        )
        if info["backend"] != "pytorch":
            raise ReidError(f"{info['weights']}: an ONNX file cannot be trained; pass the .pth it came from")
        self.source = source or {"weights": info["weights"], "sha256": info["weights_sha256"]}
        self.preprocess_cfg = info["cfg"]
        self.precision = resolve_precision(self.config.precision, self.device, training=True)
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=self.config.lr,
            weight_decay=self.config.weight_decay,
        )
        # channels-last as the trainer (and the input batches): faster convolutions, same values.
        self.model.to(memory_format=torch.channels_last)
        self.train_model: nn.Module = self.model
        if ctx.enabled:  # gradients averaged over the processes; the memory is kept in step apart
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.start_round, self.history = 0, []
        if checkpoint is not None:
            self._restore(checkpoint)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint["config"]
        if saved != self.config.to_dict():
            changed = sorted(key for key in saved if saved[key] != self.config.to_dict().get(key))
            raise ReidError(
                f"{self.out_dir}: --resume with other settings ({', '.join(changed)}); rerun with the "
                "first run's options"
            )
        if checkpoint.get("paths_sha256") != _paths_digest(self.plan.paths):
            raise ReidError(f"{self.out_dir}: --resume with other target images; pass the same CROPS")
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_round = int(checkpoint["epoch"])
        self.history = list(checkpoint.get("history") or [])
        rng = checkpoint["rng"]
        rng = [rng] if isinstance(rng, dict) else list(rng)
        saved_world = checkpoint.get("world_size", 1)
        if saved_world == self.ctx.world_size and len(rng) > self.ctx.rank:
            ckpt.restore_rng_state(rng[self.ctx.rank])
        else:
            self.notice(
                f"resuming with {self.ctx.world_size} process(es) instead of {saved_world}: "
                "random augmentation will not repeat the interrupted run exactly"
            )

    # -- the loop -------------------------------------------------------------------------------

    def fit(self, stop_after_rounds: int | None) -> dict[str, Any]:
        config = self.config
        self.notice(
            f"adapting {self.preprocess_cfg.name} ({self.source['weights']}) to {len(self.plan.paths)} "
            f"images for {config.rounds} rounds of {config.iters} batches on {self.device}; "
            f"{self.precision.describe()}"
            + (f"; continuing after round {self.start_round}" if self.start_round else "")
        )
        rounds_run = 0
        for round_index in range(self.start_round, config.rounds):
            if stop_after_rounds is not None and rounds_run >= stop_after_rounds:
                break
            with resumable(partial(self._interrupted, round_index)):
                record = self._round(round_index)
            self.history.append(record)
            self._save(round_index + 1)
            rounds_run += 1
        finished = len(self.history) >= config.rounds
        card = self._card(finished)
        if self.ctx.is_main:
            if finished:
                save_weights(self.model, self.out_dir / FINAL, meta={"adapted": _card_meta(card)})
            atomic_write_json(self.out_dir / CARD, card)
        barrier(self.ctx)
        return {**card, "rank": self.ctx.rank}

    def _interrupted(self, round_index: int) -> Interrupted:
        kept = f"stopped in round {round_index + 1}/{self.config.rounds}; " + (
            f"rounds 1-{round_index} are kept in {self.out_dir / ckpt.LAST}"
            if round_index
            else "no round finished yet"
        )
        return Interrupted(kept, resumable=True)

    def _round(self, round_index: int) -> dict[str, Any]:
        config, started = self.config, time.perf_counter()
        title = f"round {round_index + 1}/{config.rounds}"
        features = self._embed(f"{title}: embedding")
        eps: float | None = None
        if self.plan.supervised_ids is not None:
            labels = renumber(np.asarray(self.plan.supervised_ids))
        else:
            # Camera-aware: cluster on camera-centred features so that clusters span cameras.
            clustered = (
                centre_per_camera(features, np.asarray(self.plan.cameras))
                if config.camera_aware
                else features
            )
            if self.ctx.is_main:
                eps = self._radius(clustered, title)
                labels = cluster_features(
                    clustered, eps=eps, min_samples=config.min_samples, k1=config.k1, k2=config.k2
                )
            labels, eps = broadcast_from_main(self.ctx, (labels, eps) if self.ctx.is_main else None)
        stats = cluster_stats(labels)
        self.notice(f"{title}: {stats.describe()}")
        if stats.clusters < 2:
            raise ReidError(
                f"{title}: the images formed {stats.clusters} cluster(s) of at least {config.min_samples}; "
                + (
                    "lower --eps (one cluster holds most images)"
                    if stats.clusters == 1 and stats.largest > stats.images // 2
                    else "give more crops per person, or raise --eps"
                )
            )
        loss = self._train(round_index, title, torch.from_numpy(features), torch.from_numpy(labels))
        record: dict[str, Any] = {"round": round_index + 1, **stats.to_dict(), "eps": eps, "loss": loss}
        if self.plan.val_query and self.plan.val_gallery:
            record.update(self._validate())
            self.notice(f"{title}: target mAP {record['mAP']:.4f}, rank-1 {record['rank1']:.4f}")
        record["seconds"] = round(time.perf_counter() - started, 1)
        return record

    def _radius(self, features: np.ndarray, title: str) -> float:
        """The given ``eps``, else UDAP's radius from round 1's features (kept in the history)."""
        config = self.config
        if config.eps is not None:
            return config.eps
        if self.history and self.history[0].get("eps") is not None:
            return float(self.history[0]["eps"])
        eps = density_radius(features, top_fraction=config.eps_top_fraction, k1=config.k1, k2=config.k2)
        self.notice(
            f"{title}: clustering radius eps {eps:.4f} (the mean Jaccard distance of the closest "
            f"{config.eps_top_fraction:g} of all pairs, kept for every round)"
        )
        return eps

    def _embed(self, title: str) -> np.ndarray:
        """Every image's feature; under torchrun each process embeds a contiguous share."""
        cfg = self.preprocess_cfg
        preprocess = Preprocess.for_model(cfg, normalize=True, precision="fp32")
        self.notice(f"{title} {len(self.plan.paths)} images")
        total, rank, world = len(self.plan.paths), self.ctx.rank, self.ctx.world_size
        share = self.plan.paths[rank * total // world : (rank + 1) * total // world]
        result = extract(
            self.model,
            share,
            preprocess,
            batch_size=self.config.batch_size_extract,
            workers=self.config.workers,
            device=self.device,
            progress=self.show_progress,
        )
        return np.concatenate(all_gather_objects(self.ctx, result.features))

    def _train(self, round_index: int, title: str, features: torch.Tensor, labels: torch.Tensor) -> float:
        config = self.config
        cameras = torch.as_tensor(self.plan.cameras if config.camera_aware else [0] * len(labels))
        if config.camera_aware:
            memory: nn.Module = CameraAwareMemory(
                features, labels, cameras, momentum=config.momentum, temperature=config.temperature
            )
        else:
            memory = ClusterMemory(
                cluster_centroids(features, labels, int(labels.max()) + 1),
                temperature=config.temperature,
                momentum=config.momentum,
            )
        memory.to(self.device)
        samples = [
            Sample(path, int(label), int(camera))
            for path, label, camera in zip(self.plan.paths, labels.tolist(), cameras.tolist(), strict=True)
            if label >= 0
        ]
        height, width = self.preprocess_cfg.input_size
        transform = build_train_transform(
            (height, width),
            crop="pad",
            mean=self.preprocess_cfg.mean,
            std=self.preprocess_cfg.std,
            random_erasing=0.5,
        )
        loader = build_train_loader(
            samples,
            transform,
            batch_size=config.batch_size // self.ctx.world_size,
            num_instances=config.num_instances,
            workers=config.workers,
            seed=config.seed * 1000 + round_index,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        self.model.train()
        total, done, epoch = 0.0, 0, 0
        with task_progress(
            f"{title}: training", total=config.iters, unit="batch", show=self.show_progress
        ) as advance:
            while done < config.iters:
                loader.sampler.set_epoch(epoch)
                with reraise_worker_errors():
                    for images, pids, camids, _ in loader:
                        loss = self._step(memory, images, pids, camids)
                        total += loss
                        done += 1
                        advance(1, info=f"loss {loss:.3f}")
                        if done >= config.iters:
                            break
                epoch += 1
        self.model.eval()
        total = all_reduce_sums(self.ctx, {"loss": total})["loss"] / self.ctx.world_size
        if not np.isfinite(total):
            raise ReidError(
                f"{title}: the loss became {total}; lower --lr; --resume continues from the last round"
            )
        return total / done

    def _step(
        self, memory: nn.Module, images: torch.Tensor, pids: torch.Tensor, camids: torch.Tensor
    ) -> float:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with self.precision.autocast(self.device):
            out = self.train_model(images)
        loss = memory(out["features"].float(), pids.to(self.device), camids.to(self.device), self._gather)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's rows of ``tensor`` in rank order (for the memory update)."""
        if not self.ctx.enabled:
            return tensor
        parts = all_gather_objects(self.ctx, tensor.detach().cpu())
        return torch.cat(parts).to(tensor.device)

    def _validate(self) -> dict[str, float]:
        if not self.ctx.is_main:
            barrier(self.ctx)
            return {}
        metrics = evaluate_model(
            self.model,
            self.plan.val_query,
            self.plan.val_gallery,
            device=self.device,
            batch_size=self.config.batch_size_extract,
            workers=self.config.workers,
            progress=self.show_progress,
        )
        self.model.eval()
        barrier(self.ctx)
        return {"mAP": float(metrics["mAP"]), "rank1": float(metrics["rank1"])}

    # -- files ----------------------------------------------------------------------------------

    def _save(self, rounds_done: int) -> None:
        rng = gather_rng_states(self.ctx)  # every process's, so each resumes its own streams
        if not self.ctx.is_main:
            return
        cfg = self.preprocess_cfg
        ckpt.save_training_checkpoint(
            self.out_dir,
            {
                "kind": "adapt",
                "model": cfg.name,
                "model_kwargs": dict(cfg.kwargs),
                "default_cfg": cfg.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "epoch": rounds_done,
                "config": self.config.to_dict(),
                "source": self.source,
                "paths_sha256": _paths_digest(self.plan.paths),
                "history": self.history,
                "rng": rng,
                "world_size": self.ctx.world_size,
            },
        )
        lines = "".join(json.dumps(record) + "\n" for record in self.history)
        atomic_write_text(self.out_dir / METRICS, lines)
        atomic_write_json(self.out_dir / CARD, self._card(False))

    def _card(self, finished: bool) -> dict[str, Any]:
        cameras = self.plan.cameras
        return {
            "kind": "adapt",
            "method": (
                "supervised: known ids as clusters (upper bound), cluster memory"
                if self.plan.supervised_ids is not None
                else "cluster contrast (DBSCAN on k-reciprocal Jaccard distances, cluster memory)"
            )
            + (", camera-aware proxies" if self.config.camera_aware else ""),
            "model": self.preprocess_cfg.name,
            "source_weights": self.source["weights"],
            "source_sha256": self.source["sha256"],
            "target_images": len(self.plan.paths),
            "target_cameras": None if cameras is None else len({c for c in cameras if c is not None}),
            "settings": self.config.to_dict(),
            "rounds_done": len(self.history),
            "finished": finished,
            "rounds": self.history,
        }


def _card_meta(card: dict[str, Any]) -> dict[str, Any]:
    """What ``model_final.pth`` keeps of the card (the last round's clustering, not every round)."""
    last = card["rounds"][-1] if card["rounds"] else {}
    keep = ("method", "source_weights", "source_sha256", "target_images", "target_cameras", "rounds_done")
    return {**{key: card[key] for key in keep}, "last_round": last}


def _paths_digest(paths: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()
