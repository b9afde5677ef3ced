"""Load the original DaGAN checkpoints and Face-Depth-Network weights, strictly.

Files are read with `torch.load(weights_only=True)`; keys go through the ordered tables in
`rules.py`; then a strict, shape-checked load. The classic mix-ups (a ResNet-50 depth file for a
ResNet-18 model, a depth file passed as the DaGAN checkpoint, the SPADE checkpoint loaded as the
plain generator) get messages that name the mix-up.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from dagan.compat import rules
from dagan.config import ModelConfig, get_preset
from dagan.errors import DaganError
from dagan.models.dagan import DaGAN, build_discriminator, load_strict
from dagan.models.pose import PoseNetwork


def read_file(path: str | Path, what: str) -> dict:
    """torch.load a state-dict-like file on CPU, safely; any failure is one clear DaganError."""
    path = Path(path)
    if not path.is_file():
        raise DaganError(f"{what} file {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DaganError(f"cannot read {what} file {path}: truncated or not a PyTorch checkpoint ({msg})") from None
    if not isinstance(data, dict):
        raise DaganError(f"{what} file {path} does not hold a dict (got {type(data).__name__})")
    return data


def strip_prefix(state: dict) -> dict:
    """Drop DDP/DataParallel `module.` prefixes."""
    out = {}
    for key, value in state.items():
        while key.startswith("module."):
            key = key[len("module."):]
        out[key] = value
    return out


def translate(state: dict, table, ignore=(), source: str = "checkpoint") -> dict:
    """Rename every key by the one rule it matches; unmatched, non-ignored keys are errors."""
    out = {}
    unmapped = []
    for key, value in strip_prefix(state).items():
        if any(re.fullmatch(p, key) for p in ignore):
            continue
        hits = [(p, r) for p, r in table if re.fullmatch(p, key)]
        if len(hits) != 1:
            unmapped.append(key) if not hits else _ambiguous(key, hits)
            continue
        pattern, repl = hits[0]
        m = re.fullmatch(pattern, key)
        new = repl(m) if callable(repl) else m.expand(repl)
        out[new] = value
    if unmapped:
        raise DaganError(f"{source}: {len(unmapped)} key(s) not in the original layout (e.g. {unmapped[0]!r})")
    return out


def _ambiguous(key, hits):
    raise AssertionError(f"conversion table is ambiguous for {key}: {[p for p, _ in hits]}")


def original_to_ours(component: str, state: dict, source: str = "checkpoint") -> dict:
    """Translate one original component's state dict (generator, kp_detector, discriminator,
    depth_encoder, depth_decoder, pose_encoder, pose_decoder, attention) to our names."""
    tables = {
        "generator": (rules.GENERATOR, ()),
        "kp_detector": (rules.KEYPOINT_DETECTOR, ()),
        "discriminator": (rules.DISCRIMINATOR, ()),
        "attention": (rules.ATTENTION, ()),
        "depth_encoder": (rules.RESNET_ENCODER, rules.RESNET_ENCODER_IGNORE),
        "pose_encoder": (rules.RESNET_ENCODER, rules.RESNET_ENCODER_IGNORE),
        "depth_decoder": (rules.DEPTH_DECODER, ()),
        "pose_decoder": (rules.POSE_DECODER, ()),
    }
    table, ignore = tables[component]
    return translate(state, table, ignore, source)


# ------------------------------------------------------------------------------ file sniffing
def _kind(state: dict) -> str:
    keys = set(strip_prefix(state))
    if {"generator", "kp_detector"} & keys:
        return "dagan"
    if "encoder.conv1.weight" in keys:
        return "encoder"
    if "decoder.0.conv.conv.weight" in keys:
        return "depth_decoder"
    if "net.0.weight" in keys:
        return "pose_decoder"
    return "unknown"


_NAMES = {
    "dagan": "a DaGAN checkpoint (DaGAN_vox_adv_256.pth.tar)",
    "encoder": "a depth encoder file (encoder.pth)",
    "depth_decoder": "a depth decoder file (depth.pth)",
    "pose_decoder": "a pose decoder file (pose.pth)",
    "unknown": "not a DaGAN or depth-network file",
}


def _expect(state: dict, want: str, path, flag: str) -> None:
    got = _kind(state)
    if got != want:
        hint = {"dagan": "--checkpoint", "encoder": "--depth-encoder", "depth_decoder": "--depth-decoder"}.get(got)
        extra = f"; pass it as {hint}" if hint else ""
        raise DaganError(f"{path} given as {flag} is {_NAMES[got]}, expected {_NAMES[want]}{extra}")


def resnet_depth_of(state: dict) -> int:
    """18 or 50, from an encoder state dict (ResNet-50 blocks have conv3)."""
    keys = strip_prefix(state)
    return 50 if "encoder.layer1.0.conv3.weight" in keys else 18


def _depth_name(layers: int) -> str:
    return {18: "ResNet-18 (weights_19, the one paired with the released DaGAN)",
            50: "ResNet-50 (depth_face_model_Voxceleb2_10w)"}.get(layers, f"ResNet-{layers}")


# ------------------------------------------------------------------------------ public loaders
def from_original(
    checkpoint: str | Path,
    depth_encoder: str | Path,
    depth_decoder: str | Path,
    generator: str | None = None,
    depth_layers: int | None = 18,
    config: ModelConfig | None = None,
) -> DaGAN:
    """Build a DaGAN in eval mode from the original released files.

    checkpoint: `DaGAN_vox_adv_256.pth.tar` or `SPADE_DaGAN_vox_adv_256.pth.tar` (keys `generator`,
    `kp_detector`); depth_encoder / depth_decoder: `depth/models/weights_19/{encoder,depth}.pth`.
    generator: "dagan" or "spade"; None detects it from the checkpoint. depth_layers: the ResNet
    the depth files must be (18 for the released model; None accepts what the file holds).
    The number of keypoints and RGB-D input are read from the checkpoint.
    """
    ckpt = read_file(checkpoint, "DaGAN checkpoint")
    _expect(ckpt, "dagan", checkpoint, "the DaGAN checkpoint")
    for key in ("generator", "kp_detector"):
        if key not in ckpt:
            raise DaganError(f"DaGAN checkpoint {checkpoint} has no {key!r} entry")
    gen_state = strip_prefix(ckpt["generator"])
    kp_state = strip_prefix(ckpt["kp_detector"])
    enc = read_file(depth_encoder, "depth encoder")
    _expect(enc, "encoder", depth_encoder, "the depth encoder")
    dec = read_file(depth_decoder, "depth decoder")
    _expect(dec, "depth_decoder", depth_decoder, "the depth decoder")

    is_spade = any(k.startswith("decoder.G_middle_") for k in gen_state)
    detected = "spade" if is_spade else "dagan"
    if generator is None:
        generator = detected
    if generator not in ("dagan", "spade"):
        raise DaganError(f"generator must be 'dagan' or 'spade', got {generator!r}")
    if generator != detected:
        name = "SPADE_DaGAN_vox_adv_256.pth.tar" if is_spade else "DaGAN_vox_adv_256.pth.tar"
        raise DaganError(f"{checkpoint} holds the {detected!r} generator (like {name}), but generator={generator!r} was asked for")

    enc_layers = resnet_depth_of(enc)
    if depth_layers is not None and enc_layers != depth_layers:
        raise DaganError(
            f"depth encoder {depth_encoder} is a {_depth_name(enc_layers)} but a {_depth_name(depth_layers)} is "
            f"expected; the released DaGAN checkpoints pair with ResNet-18 weights_19 "
            f"(pass depth_layers={enc_layers} / --depth-layers {enc_layers} to use it anyway)"
        )
    dec_in = strip_prefix(dec)["decoder.0.conv.conv.weight"].shape[1]
    enc_out = 2048 if enc_layers == 50 else 512
    if dec_in != enc_out:
        raise DaganError(
            f"depth decoder {depth_decoder} belongs to a {_depth_name(50 if dec_in == 2048 else 18)} encoder, "
            f"but encoder {depth_encoder} is a {_depth_name(enc_layers)}; use the encoder.pth and depth.pth "
            f"from the same folder"
        )

    if config is None:
        kp_w = kp_state.get("kp.weight")
        down = kp_state.get("down.weight")
        if kp_w is None or down is None:
            raise DaganError(f"{checkpoint}: kp_detector has no 'kp.weight'/'down.weight'; not an original DaGAN checkpoint")
        base = get_preset("vox-256")
        config = base.replace(
            num_kp=int(kp_w.shape[0]),
            depth=dataclasses.replace(base.depth, num_layers=enc_layers),
            keypoint=dataclasses.replace(base.keypoint, use_depth=int(down.shape[0]) == base.num_channels + 1),
            generator=dataclasses.replace(base.generator, kind=generator),
        )
    model = DaGAN(config)
    load_strict(model.generator, original_to_ours("generator", gen_state, str(checkpoint)), f"{checkpoint} ['generator']")
    load_strict(model.keypoint_detector, original_to_ours("kp_detector", kp_state, str(checkpoint)),
                f"{checkpoint} ['kp_detector']")
    load_strict(model.depth.encoder, original_to_ours("depth_encoder", enc, str(depth_encoder)), str(depth_encoder))
    load_strict(model.depth.decoder, original_to_ours("depth_decoder", dec, str(depth_decoder)), str(depth_decoder))
    return model.eval()


def load_original_discriminator(checkpoint: str | Path | dict, config: ModelConfig):
    """The MultiScaleDiscriminator from an original training checkpoint (key `discriminator`)."""
    ckpt = read_file(checkpoint, "DaGAN checkpoint") if not isinstance(checkpoint, dict) else checkpoint
    if "discriminator" not in ckpt:
        raise DaganError(f"{checkpoint} has no 'discriminator' entry (released inference checkpoints may lack it)")
    disc = build_discriminator(config)
    load_strict(disc, original_to_ours("discriminator", ckpt["discriminator"]), "['discriminator']")
    return disc.eval()


def load_original_pose(pose_encoder: str | Path, pose_decoder: str | Path) -> PoseNetwork:
    """The Face-Depth-Network pose network from `pose_encoder.pth` and `pose.pth`."""
    enc = read_file(pose_encoder, "pose encoder")
    _expect(enc, "encoder", pose_encoder, "the pose encoder")
    dec = read_file(pose_decoder, "pose decoder")
    _expect(dec, "pose_decoder", pose_decoder, "the pose decoder")
    net = PoseNetwork(resnet_depth_of(enc))
    load_strict(net.encoder, original_to_ours("pose_encoder", enc, str(pose_encoder)), str(pose_encoder))
    load_strict(net.decoder, original_to_ours("pose_decoder", dec, str(pose_decoder)), str(pose_decoder))
    return net.eval()
