"""3×3 convs by Winograd's minimal filtering F(4×4, 3×3), for float32 and bfloat16 inference on CPU.

Each 6×6 input tile d (stride 4) gives a 4×4 output tile Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so a conv
becomes 36 matrix products (tiles × Cin)·(Cin × Cout) with 36/144 = 1/4 of the direct
multiply-adds, plus an input and an output transform (one matrix product each). Its error is a few times the direct
conv's float rounding (tests/inference/test_winograd.py bounds it against float64), far inside the
fidelity bounds. Measured on the 2-core AMD EPYC (AVX2) for the generator's 256→256 convs at 64²,
batch 8: direct (oneDNN) 275 ms, this 186 ms; at 16² it still gains (256→512: 35 → 28 ms), at 4²
it loses (the 36 transformed filters are 4× the weights) and so do 128-channel convs. Hence
`winograd_convs` replaces convs at least `MIN_CHANNELS` wide, and each falls back to the direct
conv for outputs smaller than `MIN_SIDE`². On CUDA cuDNN picks Winograd by itself.

In bfloat16 the same algorithm runs with bf16 operands (transformed tiles, transformed filters,
products; each product accumulates in float32 inside oneDNN and is rounded once). For one
256→256 conv its error is about ten times the direct bf16 conv's (1.7e-2 against 1.7e-3 relative
RMS, against the float64 conv of the same bf16 input and weights), since tiles and filters are
rounded after their transforms. End to end (`benchmarks/bf16_fidelity.py`) that costs little on
vox-256 with recipe-B weights and a few dB on the trained demo model, still far inside the ≥ 40 dB
bound. Measured on the 2-core AMD EPYC with AVX-512-BF16, batch 8: 256→256 at 64² takes 45 ms
against 84 ms direct, 128→128 at 64² 16.5 against 21 ms; of vox-256's convs at batch 8 with
outputs of at least MIN_SIDE², every one at least 128 channels wide gained (1.1–2.2× in two runs
of `benchmarks/conv_shapes.py`) while the 64→64 ones lost (0.7–0.9×), hence `MIN_CHANNELS_BF16`.
With AMX the direct bf16 kernels have about five times the matmul peak (2088 against 418 GFLOP/s
measured), so the inference form uses bf16 Winograd only where oneDNN has no AMX.
"""

from __future__ import annotations

import torch
from torch import nn

M, ALPHA = 4, 6  # output tile side, input tile side (M + 3 - 1)
MIN_CHANNELS = 256
MIN_CHANNELS_BF16 = 128
DTYPES = (torch.float32, torch.bfloat16)
MIN_SIDE = 16
BIAS_POINT = 1 * ALPHA + 1  # Aᵀ e₁e₁ᵀ A is all ones: a bias added to product (1, 1) reaches every output

# G (6×3): the filter transform for interpolation points 0, 1, −1, 2, −1/2 and ∞; Bᵀ (6×6) and
# Aᵀ (4×6): the input and output transforms for the same points. Of the sets tried, {0, ±1, ±2}
# (Lavin & Gray's), {0, ±1, ±1/2} and {0, ±1, 2, −1/2}, the last rounds least in bfloat16: one conv's
# error 1.0e-2 against 1.5e-2 relative RMS for the first two, and the demo model's bf16 output
# 51.1 dB from fp32 against 49.4 dB. Every entry of Bᵀ⊗Bᵀ and Aᵀ⊗Aᵀ is a short dyadic fraction,
# exact in bfloat16.
G = torch.tensor([[1, 0, 0], [-1 / 3, -1 / 3, -1 / 3], [1 / 3, -1 / 3, 1 / 3],
                  [1 / 15, 2 / 15, 4 / 15], [-16 / 15, 8 / 15, -4 / 15], [0, 0, 1]], dtype=torch.float64)
BT = torch.tensor([[1, 3 / 2, -2, -3 / 2, 1, 0], [0, -1, -5 / 2, -1 / 2, 1, 0], [0, 1, 1 / 2, -5 / 2, 1, 0],
                   [0, -1 / 2, -1, 1 / 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 1, 3 / 2, -2, -3 / 2, 1]],
                  dtype=torch.float64)
AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -1 / 2, 0], [0, 1, 1, 4, 1 / 4, 0],
                   [0, 1, -1, 8, -1 / 8, 1]], dtype=torch.float64)


class WinogradConv2d(nn.Module):
    """A 3×3, stride-1 conv with zero padding 0 or 1, computed by F(4×4, 3×3). Float32 or bfloat16
    (the conv's weight dtype; inputs are cast to it), no autograd.

    B×Cin×H×W → B×Cout×H'×W' (H' = H + 2·padding - 2), channels_last, equal to the conv it was
    built from up to float rounding. Outputs smaller than MIN_SIDE² run the original conv.

    Both tile transforms are single matrix products over all tiles and channels at once, with the
    Kronecker products Bᵀ⊗Bᵀ (36×36) and Aᵀ⊗Aᵀ (16×36): measured on the 2-core Intel Xeon for a
    256→256 conv at 64², batch 8, the input transform takes 15 ms this way against 21 ms as 70
    elementwise passes, the output transform 6 ms against 17 ms.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.direct = conv
        dtype = conv.weight.dtype
        w = conv.weight.detach().double()
        g = G.to(w.device)
        u = torch.einsum("ik,ockl,jl->ijco", g, w, g).reshape(ALPHA * ALPHA, conv.in_channels, conv.out_channels)
        self.register_buffer("u", u.to(dtype).contiguous())  # 36×Cin×Cout
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device)
        self.register_buffer("bias", bias.to(dtype).contiguous())
        self.register_buffer("bt2", torch.kron(BT, BT).to(w.device, dtype))  # 36×36: (i′, j′) × (i, j)
        self.register_buffer("at2", torch.kron(AT, AT).to(w.device, dtype))  # 16×36: (r, s) × (i, j)
        self.padding, self.out_channels = conv.padding[0], conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ho, wo = h + 2 * self.padding - 2, w + 2 * self.padding - 2
        if ho * wo < MIN_SIDE * MIN_SIDE:
            return self.direct(x)
        th, tw = -(-ho // M), -(-wo // M)  # tiles per column / row
        hp, wp = th * M + 2, tw * M + 2
        padded = x.new_zeros(n, hp, wp, c, dtype=self.u.dtype)  # NHWC, zero border and tail
        p = self.padding
        padded[:, p:p + h, p:p + w] = x.permute(0, 2, 3, 1)
        tiles = padded.as_strided((ALPHA, ALPHA, n, th, tw, c), (wp * c, c, hp * wp * c, M * wp * c, M * c, 1))
        v = torch.mm(self.bt2, tiles.reshape(ALPHA * ALPHA, -1)).view(ALPHA * ALPHA, n * th * tw, c)
        prod = torch.bmm(v, self.u)  # 36×(n·th·tw)×Cout
        prod[BIAS_POINT] += self.bias
        y = torch.mm(self.at2, prod.view(ALPHA * ALPHA, -1)).view(M, M, n, th, tw, self.out_channels)
        out = torch.empty(n, self.out_channels, th * M, tw * M, dtype=self.u.dtype, device=x.device,
                          memory_format=torch.channels_last)
        out.permute(0, 2, 3, 1).view(n, th, M, tw, M, self.out_channels).permute(2, 4, 0, 1, 3, 5).copy_(y)
        return out[:, :, :ho, :wo]


def winograd_eligible(conv: nn.Module, min_channels: int | None = None,
                      dtypes: tuple[torch.dtype, ...] = DTYPES) -> bool:
    """A plain 3×3, stride-1, zero-padded (0 or 1) conv with its weight in `dtypes`, at least
    `min_channels` wide (default MIN_CHANNELS for float32, MIN_CHANNELS_BF16 for bfloat16)."""
    if type(conv) is not nn.Conv2d or conv.weight.dtype not in dtypes:
        return False
    if min_channels is None:
        min_channels = MIN_CHANNELS if conv.weight.dtype == torch.float32 else MIN_CHANNELS_BF16
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding in ((0, 0), (1, 1)) and conv.padding_mode == "zeros"
            and min(conv.in_channels, conv.out_channels) >= min_channels)


def winograd_convs(root: nn.Module, min_channels: int | None = None,
                   dtypes: tuple[torch.dtype, ...] = DTYPES) -> int:
    """Replace, in place, every eligible conv under `root` by a `WinogradConv2d`; returns how many.
    Idempotent: a second call finds nothing to replace."""
    count = 0
    for name, child in list(root.named_children()):
        if winograd_eligible(child, min_channels, dtypes):
            setattr(root, name, WinogradConv2d(child))
            count += 1
        elif not isinstance(child, WinogradConv2d):  # its fallback conv stays direct
            count += winograd_convs(child, min_channels, dtypes)
    return count
