"""Cross-modal (depth-aware) attention: queries from source depth, keys and values from image features."""

import torch
import torch.nn.functional as F
from torch import nn

QUERY_TILE = 1024


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tile: int = QUERY_TILE) -> torch.Tensor:
    """softmax(q·k)ᵀ-weighted values, `tile` query rows at a time, never holding B×N×N.

    q: B×N×d, k: B×d×N, v: B×C×N → B×C×N. Exact: each query row's softmax is complete within its
    tile. Measured faster than `scaled_dot_product_attention` here: with d ≠ C its CPU fused kernel
    is unavailable (the math fallback holds B×N×N), and zero-padding d to C (or C/d heads) to reach
    the fused kernel costs C/d times the q·k work (benchmarks/animate_speed.py, vox-256 shapes).
    On CPU without autograd, one frame at a time into one reused score tile (`attention_into`),
    except under torch.compile: Inductor fails on the in-place softmax over a buffer it aliases
    (torch 2.13: `InductorError: KeyError: 'buf1'` on vox-256), and fuses the functional tiles anyway.
    """
    no_grad = not (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)))
    if q.device.type == "cpu" and no_grad and not torch.compiler.is_compiling():
        return attention_into(q, k, v, tile)
    tiles = []
    for start in range(0, q.shape[1], tile):
        scores = torch.softmax(torch.bmm(q[:, start : start + tile], k), dim=-1)  # B×T×N
        tiles.append(torch.bmm(v, scores.transpose(1, 2)))  # B×C×T
    return tiles[0] if len(tiles) == 1 else torch.cat(tiles, dim=2)


def softmax_rows_(scores: torch.Tensor) -> torch.Tensor:
    """Row softmax in place (T×N): each row's max is read before any of it is overwritten."""
    return torch.ops.aten._softmax.out(scores, -1, False, out=scores)


def attention_into(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tile: int = QUERY_TILE) -> torch.Tensor:
    """`tiled_attention` without autograd: per frame and query tile, q·k into one reused T×N buffer,
    softmax in place, values written straight into the B×C×N result.

    A 1024×4096 float32 tile (16 MB) stays in the last-level cache, so the softmax and the value
    product read it from there; vox-256 at batch 8 on the 2-core AMD EPYC: 0.90 → 0.73 s per call.
    """
    b, n = k.shape[0], q.shape[1]
    out = torch.empty(b, v.shape[1], n, dtype=v.dtype, device=v.device)
    scores = torch.empty(min(tile, n), k.shape[2], dtype=q.dtype, device=q.device)
    for i in range(b):
        for start in range(0, n, tile):
            rows = scores[: min(tile, n - start)]
            torch.mm(q[i, start : start + tile], k[i], out=rows)
            softmax_rows_(rows)
            torch.mm(v[i], rows.t(), out=out[i, :, start : start + tile])
    return out


class DepthAwareAttention(nn.Module):
    """out = γ·Attn(Q(depth), K(feat), V(feat)) + feat, with ReLU on Q, K, V and no 1/√d scaling.

    depth_features, features: B×C×H×W (N = H·W) → (B×C×H×W, attention B×N×N or None).
    A[i, j] = softmax_j(Q_i·K_j): for each query position i, a distribution over key positions j.
    γ is a learned scalar, 0 at initialisation. Without `return_attention` the map is never
    materialised (see `tiled_attention`).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, depth_features: torch.Tensor, features: torch.Tensor, return_attention: bool = False):
        b, c, h, w = features.shape
        q = F.relu(self.query(depth_features)).flatten(2).transpose(1, 2)  # B×N×C/8
        k = F.relu(self.key(features)).flatten(2)  # B×C/8×N
        v = F.relu(self.value(features)).flatten(2)  # B×C×N
        if q.shape[0] != b:
            q = q.expand(b, -1, -1)
        if return_attention:
            attention = torch.softmax(torch.bmm(q, k), dim=-1)  # B×N×N
            out = torch.bmm(v, attention.transpose(1, 2))  # B×C×N
        else:
            attention = None
            out = tiled_attention(q, k, v)
        out = out.reshape(b, c, h, w)
        return self.gamma * out + features, attention
