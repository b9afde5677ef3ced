"""Convs with few output channels (the 7×7 output heads) as a wide conv plus shifted sums.

oneDNN's direct kernels vectorise over output channels, so a 7×7 conv to 1–3 channels costs as
much as one to 16: measured on the 2-core Intel Xeon (AVX-512), batch 8, the generator's final
64→3 conv at 256² takes 129 ms, and 128→16 at 64² takes as long as 128→1 (15–16 ms). Moving the
kernel's columns into output channels makes the conv wide: a k×1 conv to k·Cout channels (block
dx holds kernel column dx), then k shifted adds along the width put the columns back. Same
products, summed in another order, so exact up to float rounding. Measured alike: 64→3 at 256²
54 ms, 128→1 at 64² 3 ms; at 16 outputs it no longer gains, hence MAX_OUT_CHANNELS.

A bfloat16 conv keeps its wide conv in bf16 and sums the shifted columns in float32, so the result
is rounded once, as the direct conv's is: on the 2-core AMD EPYC with AVX-512-BF16 the final 64→3
conv at 256², batch 8, takes 64 ms against 115 ms direct, at the same error (3.3e-3 against 3.0e-3
relative RMS; 4.6e-3 with bf16 sums). With AMX the direct bf16 kernels are fast at any width, so
the inference form narrows bf16 convs only on CPUs without AMX; float32 convs (in a bf16 form, the
motion mask and occlusion heads) everywhere on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_OUT_CHANNELS = 4
DTYPES = (torch.float32, torch.bfloat16)


class NarrowConv2d(nn.Module):
    """A k×k (k > 1), stride-1, zero-padded conv to few channels, as a k×1 conv plus k shifted adds.

    B×Cin×H×W → B×Cout×H'×W', H' = H + 2p − k + 1, in the input's memory format and the wide
    conv's dtype, equal to the conv it was built from up to float rounding (sums in float32).
    `weight` is the wide conv's, so callers that cast their input to a head's weight dtype keep
    working.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        k, p, cout = conv.kernel_size[0], conv.padding[0], conv.out_channels
        w = conv.weight.detach()  # Cout×Cin×k×k
        self.wide = nn.Conv2d(conv.in_channels, k * cout, (k, 1), padding=(p, 0), bias=False,
                              device=w.device, dtype=w.dtype)
        with torch.no_grad():
            self.wide.weight.copy_(w.permute(3, 0, 1, 2).reshape(k * cout, conv.in_channels, k, 1))
        bias = conv.bias.detach() if conv.bias is not None else w.new_zeros(cout)
        self.register_buffer("bias", bias.clone())
        self.kernel, self.padding, self.out_channels = k, p, cout

    @property
    def weight(self) -> torch.Tensor:
        return self.wide.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        k, p, c = self.kernel, self.padding, self.out_channels
        ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
        z = self.wide(x)  # B×(k·Cout)×H'×W: block dx is kernel column dx, not yet shifted
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        out = torch.empty(b, c, ho, wo, dtype=torch.float32, device=z.device,
                          memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        out.copy_(self.bias.float().view(1, c, 1, 1).expand_as(out))
        for dx in range(k):
            x0, x1 = max(0, p - dx), min(wo, w + p - dx)  # output columns whose tap dx reads the image
            if x0 < x1:
                out[..., x0:x1] += z[:, dx * c:(dx + 1) * c, :, x0 + dx - p:x1 + dx - p]
        return out.to(z.dtype)


def narrow_eligible(conv: nn.Module, dtypes: tuple[torch.dtype, ...] = DTYPES) -> bool:
    """A plain square k×k (k > 1), stride-1, zero-padded conv with its weight in `dtypes`, to at
    most MAX_OUT_CHANNELS."""
    return (type(conv) is nn.Conv2d and conv.weight.dtype in dtypes
            and conv.kernel_size[0] == conv.kernel_size[1] > 1 and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.padding[0] == conv.padding[1] and conv.out_channels <= MAX_OUT_CHANNELS)


def narrow_convs(root: nn.Module, dtypes: tuple[torch.dtype, ...] = DTYPES) -> int:
    """Replace, in place, every eligible conv under `root` by a `NarrowConv2d`; returns how many.
    Idempotent."""
    count = 0
    for name, child in list(root.named_children()):
        if narrow_eligible(child, dtypes):
            setattr(root, name, NarrowConv2d(child))
            count += 1
        elif not isinstance(child, NarrowConv2d):
            count += narrow_convs(child, dtypes)
    return count
