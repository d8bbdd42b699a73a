"""Issue 25's domain-generalization options: each changes the network or the data as documented,
loads the plain network's weights, survives inference folding and export, and trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid_stra import ReidError
from reid_stra.data.transforms import build_train_transform
from reid_stra.engine.trainer import plan_run, train
from reid_stra.models import build_model
from reid_stra.models.layers import GeneralizedMeanPool2d, InputLowPass, InstanceBatchNorm2d, MixStyle
from reid_stra.models.mobilenet import IBN_BLOCKS
from reid_stra.retrieval.extract import make_forward


def _images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 64, 32, generator=torch.Generator().manual_seed(seed))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a / a.norm()).flatten() @ (b / b.norm()).flatten())


def test_ibn_normalizes_half_the_channels_per_image_in_the_shallow_blocks_only() -> None:
    torch.manual_seed(0)
    plain = build_model("mobilenetv2").eval()
    ibn = build_model("mobilenetv2", ibn=True).eval()
    layers = {name for name, m in ibn.named_modules() if isinstance(m, InstanceBatchNorm2d)}
    assert layers == {f"features.{i}.conv.0.1" for i in IBN_BLOCKS}
    assert min(IBN_BLOCKS) == 2 and max(IBN_BLOCKS) == 13  # not the last-stride stage
    # Same tensor names and shapes as the plain network: its BatchNorm weights load unchanged.
    ibn.load_state_dict(plain.state_dict(), strict=True)
    assert not torch.equal(plain(_images()), ibn(_images()))  # instance statistics, not running ones
    layer = ibn.features[2].conv[0][1]
    x = torch.randn(2, layer.num_features, 8, 4)
    half = layer.instance_channels
    assert half == layer.num_features // 2
    # The instance-normalized half forgets each image's own contrast and offset per channel...
    assert torch.allclose(layer(x * 3 + 1)[:, :half], layer(x)[:, :half], atol=1e-4)
    # ...the batch-normalized half keeps them (running statistics, as a BatchNorm).
    assert not torch.allclose(layer(x * 3 + 1)[:, half:], layer(x)[:, half:], atol=1e-2)


def test_ibn_trains_its_running_statistics_of_the_batch_half_only() -> None:
    layer = InstanceBatchNorm2d(8).train()
    layer(torch.randn(4, 8, 5, 5) + 2.0)
    assert torch.all(layer.running_mean[:4] == 0) and torch.all(layer.running_mean[4:] > 0.1)
    assert int(layer.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="in_ratio"):
        InstanceBatchNorm2d(8, in_ratio=1.0)


def test_mixstyle_acts_only_while_training() -> None:
    torch.manual_seed(0)
    plain = build_model("mobilenetv2", num_classes=3)
    mixed = build_model("mobilenetv2", num_classes=3, mixstyle=True)
    mixed.load_state_dict(plain.state_dict(), strict=True)  # no parameters of its own
    assert sorted(mixed.mixstyle) == ["3", "6"]
    with torch.no_grad():
        assert torch.equal(plain.eval()(_images()), mixed.eval()(_images()))
    layer = MixStyle(p=1.0).train()
    x = torch.randn(6, 4, 8, 4) * torch.arange(1, 7).view(6, 1, 1, 1)  # one style per image
    y = layer(x)
    # Re-styled: other per-image statistics, the same normalized content.
    assert not torch.allclose(y.std(dim=(2, 3)), x.std(dim=(2, 3)), rtol=0.05)
    normed = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True)
    y_normed = (y - y.mean((2, 3), keepdim=True)) / y.std((2, 3), keepdim=True)
    assert torch.allclose(normed, y_normed, atol=1e-3)
    assert torch.equal(layer.eval()(x), x)


def test_gem_pooling_is_average_pooling_at_p_1_and_learns_p() -> None:
    pool = GeneralizedMeanPool2d(p=1.0)
    x = torch.rand(2, 5, 4, 3)
    assert torch.allclose(pool(x), F.adaptive_avg_pool2d(x, 1), atol=1e-6)
    gem = GeneralizedMeanPool2d()  # p = 3: between the average and the maximum
    assert torch.all(gem(x) >= F.adaptive_avg_pool2d(x, 1) - 1e-6)
    assert torch.all(gem(x) <= F.adaptive_max_pool2d(x, 1) + 1e-6)
    model = build_model("mobilenetv2", num_classes=2, pooling="gem").train()
    F.cross_entropy(model(_images(2))["logits"], torch.tensor([0, 1])).backward()
    assert isinstance(model.global_avg_pool, GeneralizedMeanPool2d)
    assert model.global_avg_pool.p.grad is not None and model.global_avg_pool.p.grad.abs() > 0
    with pytest.raises(ReidError, match="pooling='max'"):
        build_model("mobilenetv2", pooling="max")


def test_input_lowpass_removes_detail_finer_than_the_training_crops() -> None:
    from PIL import Image

    lowpass = InputLowPass(2)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))  # edges are replicated, not wrapped
    flat = torch.full((1, 3, 64, 32), 0.3)
    checker = flat + 0.5 * (torch.arange(64).view(64, 1) + torch.arange(32).view(1, 32)).remainder(2)
    assert torch.allclose(lowpass(flat), flat) and torch.allclose(
        lowpass(checker)[inner], (flat + 0.25)[inner]
    )
    smooth = F.interpolate(torch.rand(1, 3, 8, 4), size=(64, 32), mode="bilinear", align_corners=False)
    assert (lowpass(smooth) - smooth).abs().mean() < 0.01  # already smooth: nearly unchanged
    # What resizing the crop to half size and back with Pillow (the training crops' resampling) does.
    pixels = np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    pillow = np.asarray(
        image.resize((16, 32), Image.BILINEAR).resize((32, 64), Image.BILINEAR), dtype=np.float32
    )
    ours = lowpass(torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None])[0].permute(1, 2, 0)
    assert np.abs(ours.numpy() - pillow)[3:-3, 3:-3].max() < 3.0  # Pillow rounds to uint8 twice
    torch.manual_seed(0)
    plain = build_model("mobilenetv2").eval()
    filtered = build_model("mobilenetv2", input_lowpass=2).eval()
    filtered.load_state_dict(plain.state_dict(), strict=True)  # no tensors of its own
    with torch.no_grad():  # random weights give tiny features: compare directions
        assert _cosine(filtered(checker), plain(lowpass(checker))) > 0.9999
        assert _cosine(plain(checker), plain(lowpass(checker))) < 0.99
    assert filtered.pretrained_cfg.kwargs["input_lowpass"] == 2  # recorded with the weights
    for bad in (0, 1.5, "2"):
        with pytest.raises(ReidError, match="input_lowpass"):
            build_model("mobilenetv2", input_lowpass=bad)


def test_random_grayscale_gives_grey_images_and_checks_its_probability() -> None:
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    grey = build_train_transform((64, 32), flip=False, crop="none", random_erasing=0, random_grayscale=1.0)
    out = grey(image)
    # Normalization differs per channel, so undo it before comparing the channels.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    pixels = out * std + mean
    assert torch.allclose(pixels[0], pixels[1], atol=1e-5) and torch.allclose(pixels[1], pixels[2], atol=1e-5)
    with pytest.raises(ReidError, match="random_grayscale"):
        build_train_transform((64, 32), random_grayscale=1.5)


@pytest.mark.slow
def test_folded_inference_and_export_keep_the_new_layers(tmp_path: Path) -> None:
    """The Conv+BN folding of extraction leaves IBN's instance norm alone; ONNX carries IBN, GeM
    and the low-pass (the exported graph equals PyTorch)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from reid_stra.deploy.export import export_model

    torch.manual_seed(0)
    model = build_model("mobilenetv2", ibn=True, pooling="gem", input_lowpass=2).eval()
    for module in model.modules():  # non-trivial statistics, so a wrong fold would show
        if isinstance(module, (torch.nn.BatchNorm2d, InstanceBatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    images = _images(7)
    with torch.no_grad():
        reference = model(images)
        folded = make_forward(model, torch.device("cpu"), optimize=True)(images)
    assert torch.allclose(folded, reference, atol=1e-4, rtol=1e-4)
    info = {"model": "mobilenetv2", "cfg": model.pretrained_cfg.replace(input_size=(64, 32))}
    path = tmp_path / "dg.onnx"
    export_model(model, info, path, normalize=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        (got,) = session.run(["features"], {"images": images[:batch].numpy()})
        cosine = F.cosine_similarity(torch.from_numpy(got), reference[:batch]).min()
        assert cosine >= 0.9999, cosine


@pytest.mark.slow
def test_a_tiny_run_learns_with_every_option(synthetic_root: Path, tmp_path: Path) -> None:
    overrides = {
        "root": str(synthetic_root),
        "model": "mobilenetv2",
        "model_kwargs": {"ibn": True, "mixstyle": True, "pooling": "gem", "input_lowpass": 2},
        "pretrained": "none",
        "color_jitter": True,
        "random_grayscale": 0.2,
        "random_erasing": 0.0,
        "height": 64,
        "width": 32,
        "batch_size": 8,
        "workers": 0,
        "device": "cpu",
        "epochs": 6,
        "fixbase_epochs": 0,
        "eval_every": 0,
        "lr": 3e-3,
        "seed": 3,
    }
    out = tmp_path / "run"
    summary = train(plan_run(out, recipe="paper", overrides=overrides))
    assert summary["finished"]
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] - 0.1 and log[-1]["acc"] > log[0]["acc"], [
        (e["loss"], e["acc"]) for e in log
    ]
    saved = torch.load(out / "model_final.pth", weights_only=True)
    assert saved["model_kwargs"]["ibn"] is True and saved["model_kwargs"]["input_lowpass"] == 2


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("model_kwargs={pooling: max}", "pooling='max'"),
        ("model_kwargs={input_lowpass: 0}", "input_lowpass"),
        ("random_grayscale=2", "random_grayscale 2.0"),
    ],
)
def test_unknown_option_values_are_one_line_errors(
    cli, synthetic_root: Path, tmp_path: Path, option: str, message: str
) -> None:
    result = cli(
        "train", "--data", "market1501", "--root", synthetic_root, "--model", "mobilenetv2",
        "--pretrained", "none", "--out", tmp_path / "run", "--set", option, "--epochs", "1",
        "--fixbase-epochs", "0", "--height", "64", "--width", "32", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_resnet_ibn_a_sits_in_layer1_to_3_as_ibn_net_puts_it() -> None:
    torch.manual_seed(0)
    plain = build_model("resnet50").eval()
    ibn = build_model("stra_resnet50", ibn=True).eval()
    layers = {name for name, m in ibn.named_modules() if isinstance(m, InstanceBatchNorm2d)}
    assert layers == {f"layer{i}.{b}.bn1" for i, blocks in ((1, 3), (2, 4), (3, 6)) for b in range(blocks)}
    resnet_ibn = build_model("resnet50", ibn=True).eval()
    resnet_ibn.load_state_dict(plain.state_dict(), strict=True)  # plain ResNet weights load
    with torch.no_grad():
        assert not torch.allclose(resnet_ibn(_images(2)), plain(_images(2)))
