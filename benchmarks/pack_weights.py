"""Pack a trained checkpoint into the compact file shipped in weights/ (inference only).

Drops the training classifier (dataset-specific), stores float tensors as float16 (they are
loaded back into float32 models; the embedding changes by < 1e-3 relative) and records the card
metadata. The result still loads with ``reid_stra.load_model`` / ``--weights``.

    python -m benchmarks.pack_weights runs/x/model_final.pth weights/stra_mobilenetv2_market1501mini.pth \
        --meta-json runs/x/eval.json
    python -m benchmarks.pack_weights weights/mobilenetv2_market1501mini.pth lowpass.pth \
        --model-option input_lowpass=2    # the same weights with an inference-time model option
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import yaml

from reid_stra.models.weights import read_checkpoint
from reid_stra.utils.atomic import atomic_torch_save


def pack(src: str, dst: str, extra_meta: dict | None = None, model_options: dict | None = None) -> dict:
    checkpoint = read_checkpoint(src)
    if checkpoint.get("format") != "reid-stra":
        raise SystemExit(f"{src}: expected a reid-stra model export (model_final.pth)")
    state = {
        key: (value.half() if value.is_floating_point() else value)
        for key, value in checkpoint["state_dict"].items()
        if not key.startswith("classifier.")
    }
    kwargs = {**checkpoint.get("model_kwargs", {}), **(model_options or {}), "num_classes": 0}
    cfg = {**checkpoint.get("default_cfg", {}), "kwargs": kwargs}
    meta = {**checkpoint.get("meta", {}), **(extra_meta or {}), "packed_from": str(src), "dtype": "float16"}
    packed = {**checkpoint, "model_kwargs": kwargs, "default_cfg": cfg, "meta": meta, "state_dict": state}
    atomic_torch_save(dst, packed)
    return meta


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--meta-json", help="JSON file whose keys are added to the checkpoint's meta")
    parser.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a model option recorded with the weights (a YAML scalar), e.g. input_lowpass=2",
    )
    args = parser.parse_args()
    extra = json.loads(open(args.meta_json).read()) if args.meta_json else None
    options = {}
    for pair in args.model_option:
        key, _, value = pair.partition("=")
        options[key] = yaml.safe_load(value)
    meta = pack(args.src, args.dst, extra, options)
    print(json.dumps(meta, indent=2, default=str))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
