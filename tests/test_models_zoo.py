"""Every registered model: builds, trains, evaluates; the paper's complexity numbers; the CLI table."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from reid_stra import ReidError
from reid_stra.engine.losses import mean_mode_diversity
from reid_stra.models import (
    PretrainedCfg,
    build_model,
    capture_mode_maps,
    count_flops,
    list_models,
    measure_complexity,
    mode_blocks,
)

EXPECTED_MODELS = {
    "resnet50",
    "stra_resnet50",
    "local_resnet50",
    "stra_resnet50_nointer",
    "conv_mode_resnet50",
    "gconv_mode_resnet50",
    "sasa_mode_resnet50",
    "sasa_resnet50",
    "se_resnet50",
    "nonlocal_resnet50",
    "mobilenetv2",
    "mobilenetv2_x1_4",
    "stra_mobilenetv2",
    "stra_mobilenetv2_x1_4",
}
WITH_MODE_ATTENTION = {
    "stra_resnet50",
    "stra_resnet50_nointer",
    "conv_mode_resnet50",
    "gconv_mode_resnet50",
    "sasa_mode_resnet50",
    "stra_mobilenetv2",
    "stra_mobilenetv2_x1_4",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small inputs are many tiny ops: one thread runs them fastest, and does not stall behind
    other processes on a shared machine (two threads were 10-25x slower here under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_listed_model_is_registered() -> None:
    assert EXPECTED_MODELS <= set(list_models())


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_model_trains_and_evaluates(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=5)
    dim = model.pretrained_cfg.embedding_dim
    x = torch.randn(2, 3, 64, 32)
    out = model.train()(x)
    assert set(out) == {"logits", "features", "mode_pooling"}
    assert out["logits"].shape == (2, 5)
    assert out["features"].shape[0] == 2
    if name in WITH_MODE_ATTENTION:
        diversity = mean_mode_diversity(out["mode_pooling"])
        assert diversity.dim() == 0 and torch.isfinite(diversity) and diversity > 0
    else:
        assert out["mode_pooling"] == []
        diversity = torch.zeros(())
    (out["logits"].logsumexp(1).mean() + diversity).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches {missing[:3]}"
    with torch.no_grad():
        embedding = model.eval()(x)
    assert embedding.shape == (2, dim) and torch.isfinite(embedding).all()
    complexity = measure_complexity(model, (64, 32))
    assert complexity.params > 1e6 and complexity.flops > 1e7
    assert model.training is False  # measuring restored the eval mode it found


@pytest.mark.parametrize(
    "name",
    ["conv_mode_resnet50", "gconv_mode_resnet50", "sasa_mode_resnet50", "sasa_resnet50", "nonlocal_resnet50"],
)
def test_ablations_match_the_papers_complexity(name: str) -> None:
    from reid_stra.models import get_entry

    paper = get_entry(name).paper
    measured = measure_complexity(build_model(name), (256, 128))
    assert measured.gflops == pytest.approx(paper["gflops"], abs=0.006)
    if "params_m" in paper:
        assert measured.params_m == pytest.approx(paper["params_m"], abs=0.05)


def test_pretrained_cfg_describes_how_to_rebuild() -> None:
    model = build_model("stra_resnet50", num_classes=7, reduction=4)
    cfg = model.pretrained_cfg
    assert cfg.name == "stra_resnet50"
    assert cfg.input_size == (256, 128)
    assert cfg.embedding_dim == 512
    assert len(cfg.mean) == len(cfg.std) == 3
    # Every option, defaults included: a checkpoint rebuilds the same model after a default changes.
    assert cfg.kwargs == {
        "num_classes": 7, "neck": "fc", "embedding_dim": 512, "modes": 8, "kernel_size": 3, "reduction": 4,
        "ibn": False,
    }  # fmt: skip
    rebuilt = build_model("stra_resnet50", **cfg.kwargs)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    # What a file holds reads back as the same description; a new size is a new cfg.
    assert PretrainedCfg.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.input_size = (128, 64)  # type: ignore[misc]
    assert cfg.replace(input_size=[128, 64]).input_size == (128, 64) and cfg.input_size == (256, 128)


def test_an_older_files_default_cfg_still_reads() -> None:
    """Files written before PretrainedCfg hold a dict with tuples and maybe extra keys."""
    old = {"name": "mobilenetv2", "input_size": (128, 64), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
           "embedding_dim": 1280, "kwargs": {"num_classes": 0}, "retired_key": 1}  # fmt: skip
    cfg = PretrainedCfg.from_dict(old)
    assert cfg.input_size == (128, 64) and cfg.mean == (0.5, 0.5, 0.5) and cfg.embedding_dim == 1280


def test_any_batch_and_input_size_divisible_by_32() -> None:
    model = build_model("stra_resnet50").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 64)).shape == (1, 512)
        assert model(torch.randn(3, 3, 64, 32)).shape == (3, 512)


def test_no_classifier_gives_no_logits() -> None:
    out = build_model("mobilenetv2").train()(torch.randn(2, 3, 64, 32))
    assert out["logits"] is None
    assert out["features"].shape == (2, 1280)


def test_bnneck_head() -> None:
    model = build_model("resnet50", num_classes=4, neck="bnneck")
    assert model.classifier.bias is None
    assert not model.bnneck.bias.requires_grad
    x = torch.randn(2, 3, 64, 32)
    out = model.train()(x)
    assert out["features"].shape == (2, 2048)  # pre-BN features for the triplet loss
    model.eval()
    with torch.no_grad():
        embedding = model(x)
        pooled = model.global_avg_pool(model.forward_features(x)).flatten(1)
    assert torch.allclose(embedding, model.bnneck(pooled))  # test time: the BN output


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(ReidError, match="unknown option"):
        build_model("stra_resnet50", width=3)
    with pytest.raises(ReidError, match="neck"):
        build_model("resnet50", neck="gem")
    with pytest.raises(ReidError, match="did you mean 'stra_resnet50'"):
        build_model("stra_resnet5")


def test_paper_complexity_resnet50_and_stra_resnet50() -> None:
    baseline = measure_complexity(build_model("resnet50"), (256, 128))
    stra = measure_complexity(build_model("stra_resnet50", num_classes=751), (256, 128))
    assert round(baseline.params / 1e6, 2) == 24.56
    assert round(baseline.flops / 1e9, 2) == 4.05
    # The paper measured the authors' own model at 17.622M / 3.166G (classifier not counted).
    assert round(stra.params / 1e6, 3) == 17.622
    assert round(stra.flops / 1e9, 3) == 3.166


def test_mobilenet_stra_flops_within_five_percent_of_baseline() -> None:
    for width in ("", "_x1_4"):
        baseline = count_flops(build_model(f"mobilenetv2{width}"))
        stra = count_flops(build_model(f"stra_mobilenetv2{width}"))
        assert baseline < stra <= 1.05 * baseline


def test_stra_mobilenet_starts_near_the_plain_network() -> None:
    """StRA is added after the depthwise convs, near the identity: the plain network's weights
    load into it and its features at initialization stay close to that network's (0.93 measured;
    0.74 without the near-identity init), so fine-tuning starts from the ImageNet features."""
    torch.manual_seed(0)
    plain = build_model("mobilenetv2").train()
    stra = build_model("stra_mobilenetv2").train()
    result = stra.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all(".stra." in key for key in result.missing_keys)
    assert not any("value_conv" in key for key in stra.state_dict())  # the depthwise conv is the value
    x = torch.randn(8, 3, 128, 64)
    with torch.no_grad():
        similarity = torch.nn.functional.cosine_similarity(
            plain.forward_features(x).mean((2, 3)), stra.forward_features(x).mean((2, 3))
        )
    assert similarity.min() > 0.85


def test_stra_mobilenet_placement_option() -> None:
    replaced = build_model("stra_mobilenetv2", stra_placement="replace", stra_blocks=(15, 16))
    assert "features.15.conv.1.0.mask_conv.0.weight" in replaced.state_dict()
    assert "features.14.conv.1.0.weight" in replaced.state_dict()  # block 14 keeps its conv
    assert replaced.eval()(torch.randn(2, 3, 64, 32)).shape == (2, 1280)
    with pytest.raises(ReidError, match="stra_placement='inside': choose one of after, replace, tail"):
        build_model("stra_mobilenetv2", stra_placement="inside")


def test_stra_mobilenet_tail_starts_as_the_plain_network_and_learns() -> None:
    """One residual StRA block after the last stage: the pretrained network unchanged at first."""
    torch.manual_seed(0)
    plain = build_model("mobilenetv2", num_classes=4)
    tail = build_model("stra_mobilenetv2", stra_placement="tail", num_classes=4)
    result = tail.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys and all(k.startswith("stra_tail.") for k in result.missing_keys)
    assert not any(".stra." in key for key in tail.state_dict() if key.startswith("features."))
    assert [name for name, _ in mode_blocks(tail)] == ["stra_tail"]
    assert "stra_tail" in tail.new_layer_names()  # the fixbase epochs train it
    x = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), tail.eval()(x))
    tail.train()
    optimizer = torch.optim.SGD(tail.stra_tail.parameters(), lr=0.1)
    for _ in range(2):  # step 1 moves the zero scale, step 2 reaches StRA itself
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(tail(x)["logits"], torch.arange(4)).backward()
        optimizer.step()
    assert tail.stra_tail.bn.weight.abs().sum() > 0
    assert tail.stra_tail.stra.mask_conv[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.equal(plain.eval()(x), tail.eval()(x))
    with pytest.raises(ReidError, match="leave stra_blocks unset"):
        build_model("stra_mobilenetv2", stra_placement="tail", stra_blocks=(15,))


def test_capture_mode_maps_names_blocks() -> None:
    model = build_model("stra_resnet50").eval()
    assert [name for name, _ in mode_blocks(model)] == ["layer4.0", "layer4.1", "layer4.2"]
    with capture_mode_maps(model) as maps, torch.no_grad():
        model(torch.randn(2, 3, 64, 32))
        model(torch.randn(1, 3, 64, 32))
    assert maps.names == ["layer4.0", "layer4.1", "layer4.2"] * 2
    assert maps[0].shape == (2, 8, 4, 2)
    by_block = maps.by_block()
    assert set(by_block) == {"layer4.0", "layer4.1", "layer4.2"}
    assert by_block["layer4.0"].shape == (3, 8, 4, 2)
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 32))
    assert len(maps) == 6  # nothing captured after the block


def test_models_command_json(cli) -> None:
    result = cli("models", "--json", "-m", "resnet50", "-m", "stra_resnet50")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["models"]}
    assert (rows["resnet50"]["params_m"], rows["resnet50"]["gflops"]) == pytest.approx(
        (24.558, 4.054), abs=1e-3
    )
    assert (rows["stra_resnet50"]["params_m"], rows["stra_resnet50"]["gflops"]) == pytest.approx(
        (17.622, 3.166), abs=1e-3
    )
    assert rows["stra_resnet50"]["paper"]["mAP"] == 84.1
    assert rows["stra_resnet50"]["embedding_dim"] == 512


def test_the_models_table_holds_what_each_model_measures_today() -> None:
    """``reid-stra models`` reads params/FLOPs from a table instead of building every model: the
    table must be what the models measure now, for every registered model."""
    from reid_stra.models import list_models
    from reid_stra.models.catalog import COMPLEXITY_AT_TABLE_SIZE, TABLE_SIZE

    assert set(list_models()) <= set(COMPLEXITY_AT_TABLE_SIZE)
    for name in list_models():
        model = build_model(name)
        measured = measure_complexity(model, TABLE_SIZE)
        assert COMPLEXITY_AT_TABLE_SIZE[name] == (measured.params, measured.flops, model.embedding_dim), name


def test_the_models_listing_builds_no_model_at_the_table_size(monkeypatch) -> None:
    import reid_stra.models.catalog as catalog

    def must_not_build(*args, **kwargs):
        raise AssertionError("a model was built for the listing")

    monkeypatch.setattr(catalog, "build_model", must_not_build)
    rows = catalog.describe_models()
    assert all(row["gflops"] is not None and row["embedding_dim"] for row in rows)
    with pytest.raises(AssertionError, match="was built"):
        catalog.describe_models(["mobilenetv2"], input_size=(128, 64))  # other sizes are measured


def test_models_command_lists_all_and_rejects_bad_input(cli) -> None:
    listing = cli("models", "--no-flops", "--json")
    assert listing.exit_code == 0, listing.stderr
    rows = json.loads(listing.stdout)["models"]
    assert {row["name"] for row in rows} >= EXPECTED_MODELS
    from reid_stra.models import default_model_name

    assert [row["name"] for row in rows if row["default"]] == [default_model_name()]
    marked = cli("models", "--no-flops", "-m", default_model_name())
    assert "(default)" in marked.stdout
    table = cli("models", "--no-flops", "-m", "stra_mobilenetv2")
    assert table.exit_code == 0 and "stra_mobilenetv2" in table.stdout
    bad_size = cli("models", "--size", "250x128")
    assert bad_size.exit_code == 2 and "--size" in bad_size.stderr
    bad_name = cli("models", "-m", "stra_resnet")
    assert bad_name.exit_code == 2 and "unknown model" in bad_name.stderr


@pytest.mark.parametrize("name", ["stra_resnet50", "stra_mobilenetv2", "sasa_mode_resnet50"])
def test_attention_models_fold_batchnorm_with_torch_fx(name: str) -> None:
    """Extraction folds BN with torch.fx; StRA models must trace and give the same embedding."""
    from torch.fx.experimental.optimization import fuse

    torch.manual_seed(0)
    model = build_model(name).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 1.5)
            module.running_mean.normal_(0, 0.1)
    fused = fuse(model)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()) < sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()
    )
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(fused(x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_mixed_precision_training_step() -> None:
    """The trainer uses autocast on CUDA; CPU bfloat16 autocast exercises the same dtype mixing."""
    model = build_model("stra_resnet50", num_classes=5).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 64, 32))
        loss = out["logits"].float().logsumexp(1).mean() + mean_mode_diversity(out["mode_pooling"]).float()
    loss.backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad
    )


def test_interior_pooling_keeps_modes_off_the_border() -> None:
    """``stra_pool_border=False``: every mode's pooling mass lies off the map's outer ring."""
    torch.manual_seed(0)
    model = build_model("stra_mobilenetv2", stra_pool_border=False).eval()
    default = build_model("stra_mobilenetv2").eval()
    default.load_state_dict(model.state_dict())  # same weights: only the option differs
    x = torch.randn(2, 3, 128, 64)
    with capture_mode_maps(model) as maps, torch.no_grad():
        model(x)
    with capture_mode_maps(default) as default_maps, torch.no_grad():
        default(x)
    assert maps[0].shape == (2, 8, 8, 4)
    for pooling, reference in zip(maps, default_maps, strict=True):
        ring = pooling.clone()
        ring[..., 1:-1, 1:-1] = 0
        assert ring.abs().max() == 0
        assert pooling.sum((2, 3)).sub(1).abs().max() < 1e-5
        assert reference[..., 0, :].sum() > 0  # the paper's module pools from the border too
