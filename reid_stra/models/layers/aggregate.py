"""Weighted K x K neighbourhood aggregation without materializing the K² shifted copies.

Local Attention (and SASA) compute, for every position i and mode g,
``out[g, c, i] = sum_k a[g, k, i] * v[g, c, j(i, k)]`` where j(i, k) is the k-th neighbour
(row-major over the K x K window, zero outside the image). The authors' code unfolds v into a
(B, C, K², H, W) tensor first: K² times the memory of v, kept again for backward.

Here v is zero-padded once and flattened per channel, and the output is computed on the padded
width: on that grid every neighbour is a constant offset in the flat index, so each of the K²
taps is one contiguous multiply-add over the whole tensor (long vector runs instead of W-wide
rows; ~40% faster on CPU than strided 2-D slices). The extra columns of the padded width are
dropped at the end. Backward accumulates into one padded gradient buffer the same way. Extra
memory: one padded copy of v (and of its gradient), whatever K is.

Small maps (re-ID's last stages: 16x8 at 256x128) take a third way: each mode's kernels are
scattered into a (positions x padded positions) matrix and the aggregation is one batched matrix
product over the C/G channels, forward and backward. The K² passes over v above are memory-bound
and do not get faster in bf16; a matrix product runs on the matrix units (AMX, tensor cores) and
keeps the whole block in the autocast dtype (BENCHMARKS.md, "Precision"). It does (positions /
K²) times the multiply-adds, so it is used only while that matrix stays small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Maps whose (positions x padded positions) matrix has at most this many entries aggregate as a
# matrix product: 16x8 with K=3 has 128 x 180; beyond ~24x12 the taps' passes are cheaper in fp32.
DENSE_LIMIT = 1 << 15


def window_offsets(kernel_size: int, dilation: int = 1) -> list[tuple[int, int]]:
    """Top-left corners of each neighbour's view in the padded map, in unfold's row-major order."""
    return [(row * dilation, col * dilation) for row in range(kernel_size) for col in range(kernel_size)]


def gather_neighbours(x: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """(B, G, H, W) -> (B, G, K², H, W): each position's K² neighbours, zero outside the image.

    Only for per-mode logits (G channels, a few per cent of the value tensor's size).
    """
    height, width = x.shape[-2:]
    pad = dilation * (kernel_size // 2)
    padded = F.pad(x, (pad, pad, pad, pad))
    views = [padded[..., r : r + height, c : c + width] for r, c in window_offsets(kernel_size, dilation)]
    return torch.stack(views, dim=2)


class _FlatGrid:
    """Geometry of the padded, flattened grid for one (H, W, K, dilation)."""

    def __init__(self, height: int, width: int, kernel_size: int, dilation: int) -> None:
        self.pad = dilation * (kernel_size // 2)
        self.height, self.width = height, width
        self.padded_width = width + 2 * self.pad
        # One extra bottom row so the last tap's run of `length` stays inside the buffer.
        self.padded_height = height + 2 * self.pad + 1
        self.length = height * self.padded_width
        self.offsets = [r * self.padded_width + c for r, c in window_offsets(kernel_size, dilation)]

    def pad_values(self, values: torch.Tensor, modes: int) -> torch.Tensor:
        """(B, C, H, W) -> (B, G, C/G, padded_height * padded_width), zero outside the image."""
        p = self.pad
        padded = F.pad(values, (p, p, p, p + 1))
        return padded.view(values.shape[0], modes, values.shape[1] // modes, -1)

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(..., H, W) -> (..., H * padded_width): zero-filled extra columns."""
        return F.pad(x, (0, self.padded_width - self.width)).flatten(-2)

    def from_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(..., H * padded_width) -> (..., H, W)."""
        return x.unflatten(-1, (self.height, self.padded_width))[..., : self.width]


def _accumulate(weights: torch.Tensor, source: torch.Tensor, grid: _FlatGrid) -> torch.Tensor:
    """sum_k weights[:, :, k:k+1] * source[..., off_k : off_k + L] on the flat grid."""
    out = None
    for index, offset in enumerate(grid.offsets):
        view = source[..., offset : offset + grid.length]
        weight = weights[:, :, index : index + 1]
        if out is None:
            out = weight * view
        else:
            out.addcmul_(weight, view)
    return out


class _LocalAggregate(torch.autograd.Function):
    """Saves the attention weights and the un-padded values, nothing per tap."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, values: torch.Tensor, kernel_size: int, dilation: int):
        ctx.save_for_backward(weights, values)
        ctx.geometry = (kernel_size, dilation)
        return _aggregate(weights, values, kernel_size, dilation)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weights, values = ctx.saved_tensors
        batch, modes, taps, height, width = weights.shape
        grid = _FlatGrid(height, width, *ctx.geometry)
        # Zero in the extra columns, so positions outside the output get no gradient.
        grad = grid.to_grid(grad_out.reshape(batch, modes, -1, height, width))
        grad_weights = grad_values = None
        if ctx.needs_input_grad[0]:
            padded = grid.pad_values(values, modes)
            taps_grad = [
                (grad * padded[..., offset : offset + grid.length]).sum(dim=2) for offset in grid.offsets
            ]
            grad_weights = grid.from_grid(torch.stack(taps_grad, dim=2))
        if ctx.needs_input_grad[1]:
            flat_weights = grid.to_grid(weights)
            padded_grad = grad.new_zeros(batch, modes, grad.shape[2], grid.padded_height * grid.padded_width)
            for index, offset in enumerate(grid.offsets):
                padded_grad[..., offset : offset + grid.length].addcmul_(
                    flat_weights[:, :, index : index + 1], grad
                )
            p = grid.pad
            unpadded = padded_grad.unflatten(-1, (grid.padded_height, grid.padded_width))
            grad_values = unpadded[..., p : p + height, p : p + width].reshape(values.shape)
        return grad_weights, grad_values, None, None


def local_aggregate(
    weights: torch.Tensor, values: torch.Tensor, kernel_size: int, dilation: int = 1
) -> torch.Tensor:
    """Aggregate ``values`` (B, C, H, W) over each position's K x K window with per-mode weights.

    ``weights`` is (B, G, K², H, W) (one kernel per mode and position, shared by the C/G channels
    of that mode); out-of-image neighbours contribute zero. Returns (B, C, H, W).
    """
    if values.shape[1] % weights.shape[1]:
        raise ValueError(f"{values.shape[1]} value channels cannot be split into {weights.shape[1]} modes")
    # Under mixed precision the two arrive in different dtypes (softmax runs in float32).
    dtype = torch.promote_types(weights.dtype, values.dtype)
    height, width = weights.shape[-2:]
    pad = dilation * (kernel_size // 2)
    if height * width * (height + 2 * pad) * (width + 2 * pad) <= DENSE_LIMIT:  # a small map
        device = values.device.type
        if torch.is_autocast_enabled(device):  # the product runs in autocast's dtype: cast down once
            dtype = torch.get_autocast_dtype(device)
        return _dense_aggregate(weights.to(dtype), values.to(dtype), kernel_size, dilation)
    weights, values = weights.to(dtype).contiguous(), values.to(dtype).contiguous()
    if not torch.is_grad_enabled() or not (weights.requires_grad or values.requires_grad):
        # Inference: the same ops as the autograd Function's forward, as plain traceable code
        # (TorchScript tracing and ONNX export cannot record a Python autograd Function).
        return _aggregate(weights, values, kernel_size, dilation)
    return _LocalAggregate.apply(weights, values, kernel_size, dilation)


def _aggregate(weights: torch.Tensor, values: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    modes, (height, width) = weights.shape[1], weights.shape[-2:]
    grid = _FlatGrid(height, width, kernel_size, dilation)
    out = _accumulate(grid.to_grid(weights), grid.pad_values(values, modes), grid)
    return grid.from_grid(out).reshape(values.shape)


def _dense_aggregate(
    weights: torch.Tensor, values: torch.Tensor, kernel_size: int, dilation: int
) -> torch.Tensor:
    """One batched matmul: padded values (B*G, C/G, P) times kernels scattered to (B*G, HW, P).

    Plain differentiable ops (scatter's gradient is a gather, the product's two products), so
    autograd, TorchScript tracing and ONNX export need nothing special.
    """
    batch, modes, taps, height, width = weights.shape
    pad = dilation * (kernel_size // 2)
    padded_height, padded_width = height + 2 * pad, width + 2 * pad
    rows = torch.arange(height, device=weights.device).view(height, 1, 1) * padded_width
    cols = torch.arange(width, device=weights.device).view(1, width, 1)
    taps_1d = torch.arange(kernel_size, device=weights.device) * dilation
    offsets = (taps_1d.view(-1, 1) * padded_width + taps_1d.view(1, -1)).flatten()  # window_offsets' order
    # Each output position's K² sources in the padded map, row-major like the kernels' taps.
    index = (rows + cols + offsets.view(1, 1, taps)).reshape(1, height * width, taps)
    kernels = weights.reshape(batch * modes, taps, height * width).transpose(1, 2)
    matrix = kernels.new_zeros(batch * modes, height * width, padded_height * padded_width)
    matrix = matrix.scatter(2, index.expand(batch * modes, -1, -1), kernels)
    padded = F.pad(values, (pad, pad, pad, pad)).reshape(batch * modes, -1, padded_height * padded_width)
    return torch.matmul(padded, matrix.transpose(1, 2)).reshape(values.shape)
