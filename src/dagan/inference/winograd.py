"""3×3 convolutions by Winograd's minimal filtering F(4×4, 3×3), for float32 inference on CPU.

Each 6×6 input tile d (stride 4) gives a 4×4 output tile Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so a conv
becomes 36 matrix products (tiles × Cin)·(Cin × Cout) with 36/144 = 1/4 of the direct
multiply-adds, plus cheap transforms of the input and output. Its error is a few times the direct
conv's float rounding (tests/inference/test_winograd.py bounds it against float64), far inside the
fidelity bounds. Measured on the 2-core AMD EPYC (AVX2) for the generator's 256→256 convs at 64²,
batch 8: direct (oneDNN) 275 ms, this 186 ms; at 16² it still gains (256→512: 35 → 28 ms), at 4²
it loses (the 36 transformed filters are 4× the weights) and so do 128-channel convs. Hence
`winograd_convs` replaces convs at least `MIN_CHANNELS` wide, and each falls back to the direct
conv for outputs smaller than `MIN_SIDE`². On CUDA cuDNN picks Winograd by
itself, and in bf16 the AMX/AVX-512 kernels are faster than these fp32 products, so the inference
form applies this to float32 on CPU only.
"""

from __future__ import annotations

import torch
from torch import nn

M, ALPHA = 4, 6  # output tile side, input tile side (M + 3 - 1)
MIN_CHANNELS = 256
MIN_SIDE = 16
BIAS_POINT = 1 * ALPHA + 1  # Aᵀ e₁e₁ᵀ A is all ones: a bias added to product (1, 1) reaches every output

# G (6×3): the filter transform for interpolation points 0, ±1, ±2 and ∞.
G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)


def input_transform(d: list[torch.Tensor], out: torch.Tensor, tmp: torch.Tensor) -> None:
    """Bᵀ along one axis: six slabs d[0..5] → out[0..5] (same shapes); tmp holds four slabs.

    Rows of Bᵀ: 4d0-5d2+d4, (d4-4d2)±(d3-4d1), (d4-d2)±2(d3-d1), 4d1-5d3+d5.
    """
    p, q, r, s = tmp
    torch.add(d[4], d[2], alpha=-4, out=p)
    torch.add(d[3], d[1], alpha=-4, out=q)
    torch.sub(d[4], d[2], out=r)
    torch.sub(d[3], d[1], out=s)
    torch.add(d[4], d[2], alpha=-5, out=out[0]).add_(d[0], alpha=4)
    torch.add(p, q, out=out[1])
    torch.sub(p, q, out=out[2])
    torch.add(r, s, alpha=2, out=out[3])
    torch.add(r, s, alpha=-2, out=out[4])
    torch.add(d[5], d[3], alpha=-5, out=out[5]).add_(d[1], alpha=4)


def output_transform(m: list[torch.Tensor], out: list[torch.Tensor], tmp: torch.Tensor) -> None:
    """Aᵀ along one axis: six slabs m[0..5] → four out[0..3]; tmp holds four slabs.

    Rows of Aᵀ: m0+(m1+m2)+(m3+m4), (m1-m2)+2(m3-m4), (m1+m2)+4(m3+m4), (m1-m2)+8(m3-m4)+m5.
    """
    a, b, c, e = tmp
    torch.add(m[1], m[2], out=a)
    torch.sub(m[1], m[2], out=b)
    torch.add(m[3], m[4], out=c)
    torch.sub(m[3], m[4], out=e)
    torch.add(a, c, out=out[0]).add_(m[0])
    torch.add(b, e, alpha=2, out=out[1])
    torch.add(a, c, alpha=4, out=out[2])
    torch.add(b, e, alpha=8, out=out[3]).add_(m[5])


class WinogradConv2d(nn.Module):
    """A 3×3, stride-1 conv with zero padding 0 or 1, computed by F(4×4, 3×3). Float32, no autograd.

    B×Cin×H×W → B×Cout×H'×W' (H' = H + 2·padding - 2), channels_last, equal to the conv it was
    built from up to float rounding. Outputs smaller than MIN_SIDE² run the original conv.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.direct = conv
        w = conv.weight.detach().double()
        g = G.to(w.device)
        u = torch.einsum("ik,ockl,jl->ijco", g, w, g).reshape(ALPHA * ALPHA, conv.in_channels, conv.out_channels)
        self.register_buffer("u", u.float().contiguous())  # 36×Cin×Cout
        bias = conv.bias.detach().float() if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device)
        self.register_buffer("bias", bias.contiguous())
        self.padding, self.out_channels = conv.padding[0], conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ho, wo = h + 2 * self.padding - 2, w + 2 * self.padding - 2
        if ho * wo < MIN_SIDE * MIN_SIDE:
            return self.direct(x)
        th, tw = -(-ho // M), -(-wo // M)  # tiles per column / row
        hp, wp = th * M + 2, tw * M + 2
        padded = x.new_zeros(n, hp, wp, c)  # NHWC, zero border and tail
        p = self.padding
        padded[:, p:p + h, p:p + w] = x.permute(0, 2, 3, 1)
        v = self._transform_input(padded, th, tw)  # 36×(n·th·tw)×Cin
        prod = torch.empty(ALPHA * ALPHA, v.shape[1], self.out_channels, dtype=x.dtype, device=x.device)
        for k in range(ALPHA * ALPHA):
            if k == BIAS_POINT:
                torch.addmm(self.bias, v[k], self.u[k], out=prod[k])
            else:
                torch.mm(v[k], self.u[k], out=prod[k])
        out = self._transform_output(prod.view(ALPHA, ALPHA, n, th, tw, self.out_channels), th, tw)
        return out[:, :, :ho, :wo]

    def _transform_input(self, padded: torch.Tensor, th: int, tw: int) -> torch.Tensor:
        n, _, wp, c = padded.shape
        rows = torch.empty(ALPHA, n, th, wp, c, dtype=padded.dtype, device=padded.device)
        tmp = torch.empty(4, n, th, wp, c, dtype=padded.dtype, device=padded.device)
        input_transform([padded[:, j:j + th * M:M] for j in range(ALPHA)], rows, tmp)
        v = torch.empty(ALPHA, ALPHA, n, th, tw, c, dtype=padded.dtype, device=padded.device)
        tmp = tmp.view(-1)[: 4 * n * th * tw * c].view(4, n, th, tw, c)
        for i in range(ALPHA):
            input_transform([rows[i][:, :, k:k + tw * M:M] for k in range(ALPHA)], v[i], tmp)
        return v.view(ALPHA * ALPHA, n * th * tw, c)

    def _transform_output(self, prod: torch.Tensor, th: int, tw: int) -> torch.Tensor:
        n, co = prod.shape[2], prod.shape[-1]
        half = torch.empty(M, ALPHA, n, th, tw, co, dtype=prod.dtype, device=prod.device)
        tmp = torch.empty(4, ALPHA, n, th, tw, co, dtype=prod.dtype, device=prod.device)
        output_transform(list(prod), list(half), tmp)
        out = torch.empty(n, co, th * M, tw * M, dtype=prod.dtype, device=prod.device, memory_format=torch.channels_last)
        tiles = out.permute(0, 2, 3, 1).view(n, th, M, tw, M, co)
        tmp = tmp[:, 0]
        for r in range(M):
            output_transform(list(half[r]), [tiles[:, :, r, :, s] for s in range(M)], tmp)
        return out


def winograd_eligible(conv: nn.Module, min_channels: int | None = None) -> bool:
    """A plain 3×3, stride-1, zero-padded (0 or 1) float32 conv at least `min_channels` (default
    MIN_CHANNELS) wide."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding in ((0, 0), (1, 1))
            and conv.padding_mode == "zeros" and conv.weight.dtype == torch.float32
            and min(conv.in_channels, conv.out_channels) >= (MIN_CHANNELS if min_channels is None else min_channels))


def winograd_convs(root: nn.Module, min_channels: int | None = None) -> int:
    """Replace, in place, every eligible conv under `root` by a `WinogradConv2d`; returns how many.
    Idempotent: a second call finds nothing to replace."""
    count = 0
    for name, child in list(root.named_children()):
        if winograd_eligible(child, min_channels):
            setattr(root, name, WinogradConv2d(child))
            count += 1
        elif not isinstance(child, WinogradConv2d):  # its fallback conv stays direct
            count += winograd_convs(child, min_channels)
    return count
