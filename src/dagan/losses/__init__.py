"""Training losses: perceptual, adversarial, equivariance, keypoint distance, photometric (depth).

`objective` assembles them into dicts of named, already-weighted terms.
"""

from dagan.losses.adversarial import discriminator_gan_loss, feature_matching_loss, generator_gan_loss
from dagan.losses.equivariance import RandomTransform, equivariance_jacobian_loss, equivariance_value_loss
from dagan.losses.keypoint import keypoint_distance_loss
from dagan.losses.objective import LossWeights, discriminator_terms, generator_terms, total_loss
from dagan.losses.perceptual import VGG19, ImagePyramid, PyramidPerceptualLoss, load_vgg19
from dagan.losses.photometric import (
    DepthTrainingLoss,
    backproject_depth,
    disp_to_depth,
    edge_aware_smoothness,
    intrinsics_matrix,
    min_reprojection_with_automask,
    photometric_error,
    project_3d,
    reproject,
    rotation_from_axisangle,
    scale_intrinsics,
    ssim_error,
    transformation_from_parameters,
    translation_matrix,
)

__all__ = [
    "VGG19",
    "DepthTrainingLoss",
    "ImagePyramid",
    "LossWeights",
    "PyramidPerceptualLoss",
    "RandomTransform",
    "backproject_depth",
    "discriminator_gan_loss",
    "discriminator_terms",
    "disp_to_depth",
    "edge_aware_smoothness",
    "equivariance_jacobian_loss",
    "equivariance_value_loss",
    "feature_matching_loss",
    "generator_gan_loss",
    "generator_terms",
    "intrinsics_matrix",
    "keypoint_distance_loss",
    "load_vgg19",
    "min_reprojection_with_automask",
    "photometric_error",
    "project_3d",
    "reproject",
    "rotation_from_axisangle",
    "scale_intrinsics",
    "ssim_error",
    "total_loss",
    "transformation_from_parameters",
    "translation_matrix",
]
