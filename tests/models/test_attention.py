"""Depth-aware attention: the tiled path equals the explicit softmax at every size the presets use."""

import pytest
import torch

from dagan.config import PRESETS, get_preset
from dagan.models import attention as attention_module
from dagan.models.attention import DepthAwareAttention, tiled_attention


def preset_shape(name):
    cfg = get_preset(name)
    g = cfg.generator
    channels = min(g.max_features, g.block_expansion * 2**g.num_down_blocks)
    side = cfg.image_size // 2**g.num_down_blocks
    return channels, side


SHAPES = sorted({preset_shape(name) for name in PRESETS})


def reference(module, depth_features, features):
    """The explicit formulation in float64: softmax over the full B×N×N score matrix."""
    m = {k: v.double() for k, v in module.state_dict().items()}
    conv = torch.nn.functional.conv2d
    q = conv(depth_features.double(), m["query.weight"], m["query.bias"]).relu().flatten(2).transpose(1, 2)
    k = conv(features.double(), m["key.weight"], m["key.bias"]).relu().flatten(2)
    v = conv(features.double(), m["value.weight"], m["value.bias"]).relu().flatten(2)
    attn = torch.softmax(torch.bmm(q.expand(k.shape[0], -1, -1), k), dim=-1)
    return (m["gamma"] * torch.bmm(v, attn.transpose(1, 2)).view_as(features) + features.double()), attn


@pytest.mark.parametrize("channels,side", SHAPES)
@torch.no_grad()
def test_tiled_matches_explicit_softmax(channels, side):
    module = DepthAwareAttention(channels)
    module.gamma.fill_(1.0)
    g = torch.Generator().manual_seed(channels + side)
    depth = torch.rand(1, channels, side, side, generator=g)  # one source, broadcast over the batch
    feat = torch.rand(2, channels, side, side, generator=g)
    want, want_attn = reference(module, depth, feat)
    fused, none = module(depth, feat)
    explicit, attn = module(depth, feat, return_attention=True)
    assert none is None and attn.shape == (2, side * side, side * side)
    torch.testing.assert_close(fused.double(), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(explicit.double(), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(attn.double(), want_attn, atol=1e-6, rtol=0)


@pytest.mark.parametrize("grad", [True, False], ids=["autograd-batched", "no-grad-into"])
def test_partial_last_tile_and_no_full_score_matrix(monkeypatch, grad):
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.rand(3, 100, 4, generator=g), torch.rand(3, 4, 100, generator=g), torch.rand(3, 8, 100, generator=g)
    full = torch.bmm(v, torch.softmax(torch.bmm(q, k), -1).transpose(1, 2))
    shapes = []
    if grad:
        q.requires_grad_(True)
        softmax = torch.softmax
        monkeypatch.setattr(attention_module.torch, "softmax", lambda x, dim: shapes.append(x.shape) or softmax(x, dim))
    else:
        softmax_ = attention_module.softmax_rows_
        monkeypatch.setattr(attention_module, "softmax_rows_", lambda x: shapes.append(x.shape) or softmax_(x))
    with torch.set_grad_enabled(grad):
        out = tiled_attention(q, k, v, tile=32)
    torch.testing.assert_close(out, full, atol=1e-6, rtol=0)
    if grad:
        assert out.requires_grad and shapes == [(3, 32, 100)] * 3 + [(3, 4, 100)]
    else:
        assert shapes == ([(32, 100)] * 3 + [(4, 100)]) * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_softmax_in_place_equals_out_of_place(dtype):
    x = torch.randn(64, 300, generator=torch.Generator().manual_seed(1)).to(dtype) * 4
    want = torch.softmax(x, dim=-1)
    got = attention_module.softmax_rows_(x.clone())
    assert torch.equal(got, want)


@torch.no_grad()
def test_compiled_attention_takes_the_functional_tiles(monkeypatch):
    """Under torch.compile the in-place tile (which Inductor mis-compiled on vox-256) is not used;
    checked by the dispatch (compiling here would cost the suite a minute)."""
    g = torch.Generator().manual_seed(2)
    q, k, v = torch.rand(2, 40, 4, generator=g), torch.rand(2, 4, 40, generator=g), torch.rand(2, 8, 40, generator=g)
    used = []
    into = attention_module.attention_into
    monkeypatch.setattr(attention_module, "attention_into", lambda *a, **kw: used.append(1) or into(*a, **kw))
    eager = tiled_attention(q, k, v, tile=16)
    monkeypatch.setattr(attention_module.torch.compiler, "is_compiling", lambda: True)
    compiling = tiled_attention(q, k, v, tile=16)
    assert used == [1]  # the eager call only
    torch.testing.assert_close(compiling, eager, atol=1e-6, rtol=0)
