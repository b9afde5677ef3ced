"""dagan: Depth-Aware GAN (Hong et al., CVPR 2022) for one-shot talking-head reenactment.

Public API:
    dagan.from_original(checkpoint=..., depth_encoder=..., depth_decoder=..., generator="dagan"|"spade")
    dagan.DaGAN.from_pretrained(directory) / model.save_pretrained(directory)
    model.estimate_depth(images), model.detect_keypoints(images, depth), model.animate(source, driving)
"""

from dagan._openmp import limit_spinning

limit_spinning()  # before the first import of torch (below)

from dagan.compat import from_original  # noqa: E402
from dagan.config import ModelConfig, get_preset  # noqa: E402
from dagan.errors import DaganError  # noqa: E402
from dagan.geometry import Keypoints  # noqa: E402
from dagan.models import DaGAN  # noqa: E402

__version__ = "0.1.0"

__all__ = ["DaGAN", "DaganError", "Keypoints", "ModelConfig", "__version__", "from_original", "get_preset"]
