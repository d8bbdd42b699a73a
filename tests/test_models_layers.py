"""StRA layers: the authors' golden vector, and our aggregation against the naive unfold."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from reid_stra.engine.losses import mode_diversity
from reid_stra.models.layers import StRA, local_aggregate
from reid_stra.models.layers import aggregate as aggregate_module
from reid_stra.models.layers.mode_attention import ModeAttention
from reid_stra.models.layers.mode_record import record_mode_pooling

TOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small inputs are many tiny ops: one thread runs them fastest, and does not stall behind
    other processes on a shared machine (two threads were 10-25x slower here under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def golden(shared_dir):
    return torch.load(shared_dir / "fixtures" / "stra_module_golden.pt", weights_only=True)


def _module(golden) -> StRA:
    cfg = golden["config"]
    module = StRA(
        cfg["channels"],
        cfg["channels"],
        modes=cfg["modes"],
        kernel_size=cfg["kernel_size"],
        reduction=cfg["reduction"],
    )
    module.load_state_dict(golden["state_dict"])  # strict: the authors' names map 1:1
    return module


def _stats_before_train_forward(module: StRA, x: torch.Tensor) -> StRA:
    """The fixture's eval outputs were computed before its train-mode forward on ``x``, whose
    running-stat update (momentum 0.1, num_batches_tracked=1) is in the saved state_dict; undo it.

    saved = (1-m) pre + m b and after = (1-m) saved + m b, so pre = ((2-m) saved - after) / (1-m).
    """
    probe = copy.deepcopy(module).train()
    with torch.no_grad():
        probe(x)
    restored = copy.deepcopy(module)
    for (name, buffer), (_, after) in zip(restored.named_buffers(), probe.named_buffers(), strict=True):
        if name.endswith(("running_mean", "running_var")):
            momentum = 0.1
            buffer.copy_(((2 - momentum) * buffer - after) / (1 - momentum))
    return restored


def test_golden_train_mode(golden) -> None:
    module = _module(golden).train()
    with torch.no_grad():
        y = module(golden["x"])
    assert (y - golden["y_train"]).abs().max() <= TOL


def test_golden_eval_mode_local_output_and_diversity(golden) -> None:
    module = _stats_before_train_forward(_module(golden), golden["x"]).eval()
    with torch.no_grad(), record_mode_pooling() as maps:
        local = module.local(golden["x"])
        y = module(golden["x"])
    assert (local - golden["local_out_eval"]).abs().max() <= TOL
    assert (y - golden["y_eval"]).abs().max() <= TOL
    (pooling,) = maps
    assert pooling.module is module.moe
    assert (mode_diversity(pooling.weights) - golden["diversity_eval"]).abs().max() <= TOL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_golden_on_cuda(golden) -> None:
    module = _stats_before_train_forward(_module(golden), golden["x"]).eval().cuda()
    with torch.no_grad():
        y = module(golden["x"].cuda())
    assert (y.cpu() - golden["y_eval"]).abs().max() <= TOL


def _unfold_aggregate(
    weights: torch.Tensor, values: torch.Tensor, kernel_size: int, dilation: int
) -> torch.Tensor:
    """The authors' way: materialize all K² shifted copies (reference only)."""
    batch, modes, taps, height, width = weights.shape
    channels = values.shape[1]
    pad = dilation * (kernel_size // 2)
    unfolded = F.unfold(values, kernel_size, dilation=dilation, padding=pad)
    unfolded = unfolded.view(batch, modes, channels // modes, taps, height, width)
    return (unfolded * weights.unsqueeze(2)).sum(3).view(batch, channels, height, width)


@pytest.mark.parametrize("path", ["matrix product", "taps"])
@pytest.mark.parametrize(
    ("kernel_size", "dilation", "height", "width"), [(3, 1, 5, 4), (5, 1, 6, 3), (3, 2, 7, 5), (1, 1, 2, 2)]
)
def test_aggregation_matches_unfold_and_has_exact_gradients(
    kernel_size, dilation, height, width, path, monkeypatch
) -> None:
    if path == "taps":  # the way of maps too large for the matrix product
        monkeypatch.setattr(aggregate_module, "DENSE_LIMIT", 0)
    generator = torch.Generator().manual_seed(0)
    taps = kernel_size * kernel_size
    weights = torch.randn(2, 2, taps, height, width, dtype=torch.float64, generator=generator).softmax(2)
    values = torch.randn(2, 6, height, width, dtype=torch.float64, generator=generator)
    expected = _unfold_aggregate(weights, values, kernel_size, dilation)
    assert torch.allclose(local_aggregate(weights, values, kernel_size, dilation), expected, atol=1e-12)
    weights.requires_grad_()
    values.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda w, v: local_aggregate(w, v, kernel_size, dilation), (weights, values)
    )


def test_mode_attention_pooling_is_a_distribution_and_diversity_in_range() -> None:
    torch.manual_seed(0)
    module = ModeAttention(64, modes=8).eval()
    with torch.no_grad(), record_mode_pooling() as maps:
        y = module(torch.randn(3, 64, 4, 2))
    assert y.shape == (3, 64, 4, 2)
    (entry,) = maps
    pooling = entry.weights
    assert pooling.shape == (3, 8, 4, 2)
    assert torch.allclose(pooling.sum(dim=(2, 3)), torch.ones(3, 8))
    # G - sum_i max_g P[g, i] lies in [0, G - 1]: 0 when modes pool disjoint places.
    diversity = mode_diversity(pooling)
    assert diversity.shape == (3,)
    assert ((diversity >= 0) & (diversity <= 7)).all()
    with torch.no_grad():
        module(torch.randn(3, 64, 4, 2))
    assert len(maps) == 1 and not hasattr(module, "last_diversity")  # no record open: nothing kept


def test_sasa_matches_a_naive_unfold_implementation() -> None:
    from reid_stra.models.layers import SASA

    torch.manual_seed(0)
    module = SASA(32, 32, heads=4, kernel_size=3).double()
    x = torch.randn(2, 32, 5, 4, dtype=torch.float64)
    q, k, v = module.query_conv(x), module.key_conv(x), module.value_conv(x)
    batch, channels, height, width = q.shape
    heads, n = 4, channels // 4
    keys = F.unfold(k, 3, padding=1).view(batch, heads, n, 9, height, width)
    values = F.unfold(v, 3, padding=1).view(batch, heads, n, 9, height, width)
    relative = module.relative_embedding().view(1, heads, n, 9, 1, 1)
    logits = (q.view(batch, heads, n, 1, height, width) * (keys + relative)).sum(2)
    expected = (
        ((logits / n**0.5).softmax(2).unsqueeze(2) * values).sum(3).view(batch, channels, height, width)
    )
    with torch.no_grad():
        assert torch.allclose(module(x), expected, atol=1e-12)
