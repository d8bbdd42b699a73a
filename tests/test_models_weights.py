"""Loading and saving weights: the authors' layout, torchreid checkpoints, legacy files, bad files."""

from __future__ import annotations

import json
import pathlib
import urllib.error

import pytest
import torch

from reid_stra import ReidError
from reid_stra.models import (
    build_model,
    default_model_name,
    load_model,
    load_weights,
    save_weights,
    shipped_weights,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small inputs are many tiny ops: one thread runs them fastest on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial statistics so that a wrong or missed tensor shows in the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
    return model.eval()


def _embed(model: torch.nn.Module, seed: int = 1) -> torch.Tensor:
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


def test_stra_resnet50_state_dict_is_the_authors_layout(shared_dir) -> None:
    reference = json.loads((shared_dir / "fixtures" / "official_stra_r50_keys.json").read_text())
    ours = build_model("stra_resnet50", num_classes=reference["num_classes"]).state_dict()
    expected = [(name, list(shape), dtype) for name, shape, dtype in reference["keys"]]
    actual = [(name, list(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in ours.items()]
    assert len(actual) == 440
    assert actual == expected  # same names, shapes, dtypes, same order


def test_torchreid_checkpoint_with_module_prefix_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    trained = _randomized(build_model("stra_resnet50", num_classes=751))
    checkpoint = {
        "state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()},
        "epoch": 60,
        "rank1": 0.94,
        "optimizer": {"state": {}, "param_groups": [{"lr": 3e-4, "params": [0, 1]}]},
    }
    path = tmp_path / "model.pth.tar-60"
    torch.save(checkpoint, path)

    torch.manual_seed(1)
    fresh = build_model("stra_resnet50", num_classes=751)
    assert not torch.equal(_embed(fresh), _embed(trained))
    report = load_weights(fresh, path)
    assert len(report.loaded) == 440 and not report.missing and not report.skipped
    assert torch.equal(_embed(fresh), _embed(trained))

    # load_model on a foreign format needs the model name; it drops the dataset's classifier.
    with pytest.raises(ReidError, match="--model"):
        load_model(weights=path)
    model, info = load_model("stra_resnet50", path)
    assert torch.equal(_embed(model), _embed(trained))
    assert set(info["load_report"].skipped) == {"classifier.weight", "classifier.bias"}


def test_our_format_round_trip_with_load_model(tmp_path) -> None:
    torch.manual_seed(0)
    model = _randomized(build_model("stra_mobilenetv2", num_classes=3, neck="bnneck"))
    model.pretrained_cfg = model.pretrained_cfg.replace(input_size=(128, 64))
    path = save_weights(model, tmp_path / "out" / "weights.pth", meta={"dataset": tmp_path, "epochs": 2})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "reid-stra" and raw["model"] == "stra_mobilenetv2"
    assert raw["meta"]["dataset"] == str(tmp_path)

    loaded, info = load_model(weights=path)
    assert torch.equal(_embed(loaded), _embed(model))
    assert info["model"] == "stra_mobilenetv2"
    assert info["cfg"].input_size == (128, 64)
    assert info["cfg"].embedding_dim == 1280
    assert len(info["weights_sha256"]) == 64
    with pytest.raises(ReidError, match="holds a stra_mobilenetv2 model"):
        load_model("resnet50", path)


def test_classifier_of_another_size_is_skipped_and_reported(tmp_path) -> None:
    path = save_weights(_randomized(build_model("mobilenetv2", num_classes=10)), tmp_path / "w.pth")
    model = build_model("mobilenetv2", num_classes=4)
    report = load_weights(model, path)
    assert set(report.skipped) == {"classifier.weight", "classifier.bias"}
    assert "classifier" in report.summary()


def test_other_architectures_and_bad_files_are_clear_errors(tmp_path) -> None:
    resnet = save_weights(build_model("resnet50"), tmp_path / "resnet.pth")
    with pytest.raises(ReidError, match=r"lacks \d+ tensors of model stra_resnet50 .*--model"):
        load_weights(build_model("stra_resnet50"), resnet)
    narrow = save_weights(build_model("mobilenetv2"), tmp_path / "mnv2.pth")
    with pytest.raises(ReidError, match=r"other shapes .*features\.0\.0\.weight"):
        load_weights(build_model("mobilenetv2_x1_4"), narrow)

    empty = tmp_path / "empty.pth"
    torch.save({"state_dict": {}}, empty)
    with pytest.raises(ReidError, match="no tensors"):
        load_weights(build_model("mobilenetv2"), empty)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(narrow.read_bytes()[:4000])
    with pytest.raises(ReidError, match="truncated or corrupt"):
        load_weights(build_model("mobilenetv2"), truncated)

    with pytest.raises(ReidError, match="does not exist"):
        load_weights(build_model("mobilenetv2"), tmp_path / "missing.pth")


class _Exploit:
    """Unpickling this would create a file: what a malicious checkpoint could do."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_checkpoint_with_code_is_refused_and_not_executed(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Exploit(marker)}, path)
    assert not marker.exists()
    with pytest.raises(ReidError, match="refused"):
        load_weights(build_model("mobilenetv2"), path)
    with pytest.raises(ReidError, match="refused"):
        load_model("mobilenetv2", path)
    assert not marker.exists()


def test_raw_pickle_is_refused_with_our_error_only(tmp_path) -> None:
    """torch warns about a raw pickle's protocol before refusing it; the user sees one line, ours."""
    import pickle
    import warnings

    marker = tmp_path / "pwned"
    path = tmp_path / "raw.pkl"
    path.write_bytes(pickle.dumps({"state_dict": _Exploit(marker)}, protocol=4))
    model = build_model("mobilenetv2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ReidError, match="refused"):
            load_weights(model, path)
    assert [str(w.message) for w in caught] == []
    assert not marker.exists()


def test_legacy_mobilenetv2_imagenet_weights_load(shared_dir) -> None:
    path = shared_dir / "weights" / "mobilenetv2_imagenet_legacy.pt"
    legacy = torch.load(path, weights_only=True)
    model = build_model("mobilenetv2", pretrained=path)
    report = model.pretrained_report
    assert len(report.loaded) == len(legacy) == 312 and not report.missing and not report.unexpected
    features = model.features
    assert torch.equal(features[1].conv[0][0].weight, legacy["features.1.conv.0.weight"])  # t=1 block
    assert torch.equal(features[1].conv[1].weight, legacy["features.1.conv.3.weight"])
    assert torch.equal(features[2].conv[1][0].weight, legacy["features.2.conv.3.weight"])
    assert torch.equal(features[17].conv[3].running_var, legacy["features.17.conv.7.running_var"])
    assert torch.equal(features[18][0].weight, legacy["features.18.0.weight"])

    # StRA follows the depthwise convs of blocks 14-17: every ImageNet tensor loads (the depthwise
    # kernels too), and the new layers keep their own near-identity initialization.
    torch.manual_seed(0)
    reference = build_model("stra_mobilenetv2").state_dict()
    torch.manual_seed(0)
    stra = build_model("stra_mobilenetv2", pretrained=str(path))
    report = stra.pretrained_report
    assert len(report.loaded) == 312 and not report.unexpected
    assert torch.equal(stra.features[15].conv[1][0].weight, legacy["features.15.conv.3.weight"])
    mask = "features.15.conv.1.0.stra.mask_conv.0.weight"
    assert mask in report.missing
    assert torch.equal(stra.state_dict()[mask], reference[mask])

    # The old placement (StRA instead of the depthwise conv) leaves those 4 kernels unused.
    replaced = build_model("stra_mobilenetv2", pretrained=str(path), stra_placement="replace")
    assert sorted(replaced.pretrained_report.unexpected) == [
        f"features.{i}.conv.1.0.weight" for i in (14, 15, 16, 17)
    ]


def test_pretrained_imagenet_offline_tells_how_to_pass_a_file(tmp_path, monkeypatch) -> None:
    import reid_stra.models.build as build

    def offline(url, target):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(build, "download_url", offline)
    with pytest.raises(ReidError, match=r"pretrained=/path/to/resnet50-.*\.pth \(--pretrained FILE\)"):
        build_model("stra_resnet50", pretrained="imagenet")
    with pytest.raises(ReidError, match="no ImageNet weights"):
        build_model("mobilenetv2_x1_4", pretrained="imagenet")


def test_pretrained_resnet_file_keeps_new_layers_and_reports(tmp_path) -> None:
    torch.manual_seed(0)
    backbone = build_model("resnet50").state_dict()
    imagenet_like = {k: v for k, v in backbone.items() if not k.startswith("global_avg_pool")}
    imagenet_like["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(imagenet_like, path)
    model = build_model("stra_resnet50", pretrained=path)
    report = model.pretrained_report
    assert "fc.weight" in report.skipped
    assert sorted(report.unexpected) == [f"layer4.{i}.conv2.weight" for i in range(3)]
    assert any(k.startswith("layer4.0.conv2.moe.") for k in report.missing)
    assert torch.equal(model.state_dict()["layer3.5.conv2.weight"], backbone["layer3.5.conv2.weight"])
    with pytest.raises(ReidError, match="none of its"):
        build_model("mobilenetv2", pretrained=path)


def test_shipped_weights_are_found_and_used_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REID_STRA_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(ReidError, match="--weights"):
        load_model()
    assert default_model_name() == "mobilenetv2"  # nothing shipped: the preferred default

    torch.manual_seed(0)
    wide = save_weights(build_model("stra_mobilenetv2_x1_4"), tmp_path / "stra_mobilenetv2_x1_4_market.pth")
    assert shipped_weights("stra_mobilenetv2") is None  # not confused with the 1.4 model's file
    assert default_model_name() == "stra_mobilenetv2_x1_4"
    narrow = save_weights(
        _randomized(build_model("stra_mobilenetv2")), tmp_path / "stra_mobilenetv2_market.pth"
    )
    assert shipped_weights("stra_mobilenetv2_x1_4") == wide
    assert shipped_weights("stra_mobilenetv2") == narrow
    assert default_model_name() == "stra_mobilenetv2"
    model, info = load_model()
    assert info["model"] == "stra_mobilenetv2" and info["weights"] == str(narrow)
    assert not model.training
