"""Training helpers shared by several test modules: a tiny complete run, and the 'it learns' check."""

from __future__ import annotations

from pathlib import Path

import torch

from reid_stra.engine.checkpoint import load_training_checkpoint
from reid_stra.engine.trainer import plan_run, train

# A tiny but complete run: fixbase epoch then full training, validation every epoch, augmentation on.
TINY = {
    "model": "mobilenetv2",
    "pretrained": "none",
    "height": 64,
    "width": 32,
    "batch_size": 8,
    "workers": 0,
    "device": "cpu",
    "epochs": 3,
    "fixbase_epochs": 1,
    "eval_every": 1,
    "lr": 1e-3,
    "seed": 3,
}


def tiny_overrides(root: Path, **changes) -> dict:
    return {"root": str(root), **TINY, **changes}


def last_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_training_checkpoint(out / "last.pth")["state_dict"]


def map_before_and_after_training(shared_dir: Path, tmp_path: Path, **changes) -> tuple[float, float]:
    """mAP of ImageNet MobileNetV2 on synthetic identities before, and after 4 epochs of the
    paper's recipe (with ``changes``): the shared 'it learns' check."""
    from reid_stra.data import load_dataset, make_synthetic_dataset
    from reid_stra.models import build_model
    from reid_stra.retrieval.evaluation import evaluate_model

    imagenet = shared_dir / "weights" / "mobilenetv2_imagenet_legacy.pt"
    root = make_synthetic_dataset(tmp_path / "data", num_train_ids=32, num_test_ids=8, cameras=3,
                                  images_per_id_cam=2, size=(64, 32), seed=1)  # fmt: skip
    dataset = load_dataset("market1501", root)
    untrained = build_model("mobilenetv2", num_classes=32, pretrained=imagenet)
    untrained.pretrained_cfg = untrained.pretrained_cfg.replace(input_size=(64, 32))
    before = evaluate_model(untrained, dataset.query, dataset.gallery, workers=0, progress=False)["mAP"]
    overrides = tiny_overrides(root, pretrained=str(imagenet), batch_size=32, epochs=4, eval_every=4,
                           fixbase_epochs=0, random_crop=False, **changes)  # fmt: skip
    summary = train(plan_run(tmp_path / "run", recipe="paper", overrides=overrides))
    assert summary["best_mAP"] == summary["final"]["mAP"] and Path(summary["best_checkpoint"]).exists()
    return before, summary["final"]["mAP"]
