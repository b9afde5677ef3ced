"""Ordered key-translation tables: original (harlanhong/CVPR2022-DaGAN, Face-Depth-Network) → ours.

Each table is a list of (regex, replacement); replacement is a string template or a callable on
the match. Every original key must match exactly one rule or one ignore pattern.
"""

import re


def _decoder_conv(m: re.Match) -> str:
    # monodepth2 DepthDecoder.decoder is a ModuleList: for i = 4…0 (upconv i,0), (upconv i,1); then dispconv 0…3
    k = int(m[1])
    if k < 10:
        return f"upconv{k % 2}.{4 - k // 2}.conv.{m[2]}"
    raise KeyError(m[0])


GENERATOR = [
    (r"dense_motion_network\.down\.weight", "dense_motion.downsample.kernel"),
    (r"dense_motion_network\.(?!down\.weight$)(.+)", r"dense_motion.\1"),
    (r"first\.(.+)", r"image_encoder.first.\1"),
    (r"down_blocks\.(.+)", r"image_encoder.down_blocks.\1"),
    (r"src_first\.(.+)", r"depth_encoder.first.\1"),
    (r"src_down_blocks\.(.+)", r"depth_encoder.down_blocks.\1"),
    (r"AttnModule\.query_conv\.(weight|bias)", r"attention.query.\1"),
    (r"AttnModule\.key_conv\.(weight|bias)", r"attention.key.\1"),
    (r"AttnModule\.value_conv\.(weight|bias)", r"attention.value.\1"),
    (r"AttnModule\.gamma", "attention.gamma"),
    # DepthAwareGenerator decoder
    (r"bottleneck\.r(\d+)\.(.+)", r"decoder.bottleneck.\1.\2"),
    (r"up_blocks\.(.+)", r"decoder.up_blocks.\1"),
    (r"final\.(weight|bias)", r"decoder.final.\1"),
    # SPADEDepthAwareGenerator decoder
    (r"decoder\.compress\.(weight|bias)", r"decoder.compress.\1"),
    (r"decoder\.fc\.(weight|bias)", r"decoder.expand.\1"),
    (r"decoder\.G_middle_(\d+)\.(.+)", r"decoder.middle.\1.\2"),
    (r"decoder\.up_(\d+)\.(.+)", r"decoder.up.\1.\2"),
    (r"decoder\.conv_img\.(weight|bias)", r"decoder.to_rgb.\1"),
]

KEYPOINT_DETECTOR = [
    (r"down\.weight", "downsample.kernel"),
    (r"predictor\.(.+)", r"hourglass.\1"),
    (r"kp\.(weight|bias)", r"heatmap_head.\1"),
    (r"jacobian\.(weight|bias)", r"jacobian_head.\1"),
]

DISCRIMINATOR = [
    (r"discs\.([\w-]+)\.down_blocks\.(.+)", r"discriminators.\1.down_blocks.\2"),
    (r"discs\.([\w-]+)\.conv\.(weight|bias)", r"discriminators.\1.head.\2"),
]

ATTENTION = [
    (r"query_conv\.(weight|bias)", r"query.\1"),
    (r"key_conv\.(weight|bias)", r"key.\1"),
    (r"value_conv\.(weight|bias)", r"value.\1"),
    (r"gamma", "gamma"),
]

RESNET_ENCODER = [(r"encoder\.(?!fc\.)(.+)", r"resnet.\1")]
RESNET_ENCODER_IGNORE = [r"encoder\.fc\.(weight|bias)", r"height", r"width", r"use_stereo"]

DEPTH_DECODER = [
    (r"decoder\.(\d)\.conv\.conv\.(weight|bias)", _decoder_conv),
    (r"decoder\.1([0-3])\.conv\.(weight|bias)", r"disp_heads.\1.conv.\2"),
]

POSE_DECODER = [
    (r"net\.0\.(weight|bias)", r"squeeze.\1"),
    (r"net\.([12])\.(weight|bias)", lambda m: f"pose_convs.{int(m[1]) - 1}.{m[2]}"),
    (r"net\.3\.(weight|bias)", r"pose_out.\1"),
    (r"net\.4\.(weight|bias)", r"focal.\1"),
    (r"net\.5\.(weight|bias)", r"offset.\1"),
]
