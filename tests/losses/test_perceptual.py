import pytest
import torch
from torch import nn

from dagan.errors import DaganError
from dagan.losses import perceptual as P
from dagan.losses.perceptual import VGG19, ImagePyramid, PyramidPerceptualLoss, load_vgg19

# torchvision vgg19().features parameter names, hard-coded on purpose.
TORCHVISION_KEYS = [
    f"features.{i}.{kind}"
    for i in (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
    for kind in ("weight", "bias")
]
CLASSIFIER_KEYS = [f"classifier.{i}.{kind}" for i in (0, 3, 6) for kind in ("weight", "bias")]


class Doubling(nn.Module):
    """Toy extractor: [x, 2x]."""

    def forward(self, x):
        return [x, 2 * x]


def tiny_vgg_state(include_classifier: bool = True) -> dict[str, torch.Tensor]:
    """A full-shape VGG-19 state_dict stored as expanded 1-element tensors (a few bytes on disk)."""
    shapes = {k: v.shape for k, v in VGG19().state_dict().items()}
    state = {k: torch.full((1,), 0.001 * (i + 1)).expand(shape) for i, (k, shape) in enumerate(shapes.items())}
    if include_classifier:
        state.update({k: torch.zeros(1) for k in CLASSIFIER_KEYS})
    return state


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_vgg19_keys_are_torchvision():
    assert list(VGG19().state_dict().keys()) == TORCHVISION_KEYS
    assert len(TORCHVISION_KEYS) == 32


def test_vgg19_parameter_count_and_shapes():
    model = VGG19()
    assert sum(p.numel() for p in model.parameters()) == 20_024_384  # torchvision vgg19().features
    with torch.no_grad():
        maps = model(torch.rand(2, 3, 32, 32))
    shapes = [tuple(m.shape) for m in maps]
    assert shapes == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4), (2, 512, 2, 2)]
    assert all((m >= 0).all() for m in maps)  # every slice ends on a ReLU


def test_vgg19_imagenet_normalisation():
    model = VGG19()
    mean = torch.tensor(P.IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    with torch.no_grad():
        relu1_1 = model(mean)[0]  # normalised input is 0, so relu1_1 = relu(bias of conv 0)
    expected = torch.relu(model.features[0].bias).view(1, 64, 1, 1).expand_as(relu1_1)
    torch.testing.assert_close(relu1_1, expected)


def test_vgg19_bad_input():
    with pytest.raises(ValueError):
        VGG19()(torch.rand(1, 4, 16, 16))


def test_load_vgg19_refuses_random_weights(empty_hub):
    with pytest.raises(DaganError, match="refusing to train with random VGG weights"):
        load_vgg19()


def test_load_vgg19_random_only_when_allowed(empty_hub):
    model = load_vgg19(allow_random=True)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_load_vgg19_from_file_ignores_classifier(tmp_path):
    path = tmp_path / "vgg19.pth"
    state = tiny_vgg_state()
    torch.save(state, path)
    model = load_vgg19(path)
    for key, value in model.state_dict().items():
        assert value.min() == value.max() == state[key].reshape(-1)[0]
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_load_vgg19_from_hub_cache_without_download(empty_hub, monkeypatch):
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(tiny_vgg_state(), empty_hub / "checkpoints" / P.VGG19_FILENAME)

    def no_download(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    model = load_vgg19()
    assert float(model.features[0].bias[0]) == pytest.approx(0.002)


def test_load_vgg19_downloads_only_when_allowed(empty_hub, monkeypatch):
    calls = []

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        return tiny_vgg_state()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    with pytest.raises(DaganError):
        load_vgg19()
    assert calls == []
    load_vgg19(allow_download=True)
    assert calls == [(P.VGG19_URL, {"map_location": "cpu", "check_hash": True})]


def test_load_vgg19_bad_files(tmp_path):
    with pytest.raises(DaganError, match="not found"):
        load_vgg19(tmp_path / "missing.pth", allow_random=True)  # a given path never falls back
    state = tiny_vgg_state()
    del state["features.34.bias"]
    torch.save(state, tmp_path / "missing_key.pth")
    with pytest.raises(DaganError, match="missing"):
        load_vgg19(tmp_path / "missing_key.pth")
    state = tiny_vgg_state()
    state["features.1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra_key.pth")
    with pytest.raises(DaganError, match="unexpected"):
        load_vgg19(tmp_path / "extra_key.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DaganError):
        load_vgg19(tmp_path / "junk.pth")


def test_image_pyramid_keys_shapes_and_identity():
    pyramid = ImagePyramid((1, 0.5, 0.25, 0.125), 3)
    x = torch.rand(2, 3, 32, 32)
    out = pyramid(x)
    assert list(out) == ["prediction_1", "prediction_0.5", "prediction_0.25", "prediction_0.125"]
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    assert out["prediction_1"] is x
    # the kernel is normalised: a constant image stays constant away from the zero-padded border
    const = pyramid(torch.full((1, 3, 32, 32), 0.7))["prediction_0.5"]
    torch.testing.assert_close(const[..., 4:-4, 4:-4], torch.full_like(const[..., 4:-4, 4:-4], 0.7))


def test_image_pyramid_bad_scale():
    with pytest.raises(ValueError):
        ImagePyramid((1, 0.3), 3)
    with pytest.raises(ValueError):
        ImagePyramid((), 3)


def test_perceptual_known_value_single_scale():
    loss = PyramidPerceptualLoss(Doubling(), scales=(1,), weights=(10, 1))
    target = torch.rand(2, 3, 8, 8)
    pred = target + 0.25
    # 10·mean|0.25| + 1·mean|0.5|
    torch.testing.assert_close(loss(pred, target), torch.tensor(3.0))
    torch.testing.assert_close(loss(pred, target, weights=(0, 2)), torch.tensor(1.0))
    assert loss(target, target).item() == 0


def test_perceptual_multiscale_equals_sum_over_levels():
    scales = (1, 0.5, 0.25)
    loss = PyramidPerceptualLoss(Doubling(), scales=scales, weights=(1, 3))
    pred, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    pyramid = ImagePyramid(scales, 3)
    expected = 0
    for a, b in zip(pyramid(pred).values(), pyramid(target).values()):
        expected = expected + (a - b).abs().mean() + 3 * (2 * a - 2 * b).abs().mean()
    torch.testing.assert_close(loss(pred, target), expected)


def test_perceptual_weight_count_mismatch():
    loss = PyramidPerceptualLoss(Doubling(), scales=(1,), weights=(1, 1, 1))
    with pytest.raises(ValueError):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 4, 4))


def test_perceptual_gradients_flow_through_vgg19_to_prediction_only():
    torch.manual_seed(0)
    loss = PyramidPerceptualLoss(load_vgg19(allow_random=True), scales=(1, 0.5))
    pred = torch.rand(1, 3, 32, 32, requires_grad=True)
    target = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(pred, target)
    value.backward()
    assert value.item() > 0
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
