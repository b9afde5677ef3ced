"""DaGAN networks: one file per paper component, and the DaGAN container."""

from dagan.models.dagan import DaGAN, SourceState, build_discriminator, build_generator, build_keypoint_detector
from dagan.models.depth import DepthNetwork
from dagan.models.discriminator import MultiScaleDiscriminator
from dagan.models.generator import DepthAwareGenerator
from dagan.models.keypoint_detector import KeypointDetector
from dagan.models.pose import PoseNetwork

__all__ = [
    "DaGAN",
    "DepthAwareGenerator",
    "DepthNetwork",
    "KeypointDetector",
    "MultiScaleDiscriminator",
    "PoseNetwork",
    "SourceState",
    "build_discriminator",
    "build_generator",
    "build_keypoint_detector",
]
