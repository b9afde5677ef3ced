"""The only code that knows the original repository's key names and file layouts."""

from dagan.compat.original import (
    from_original,
    load_original_discriminator,
    load_original_pose,
    original_to_ours,
    translate,
)

__all__ = ["from_original", "load_original_discriminator", "load_original_pose", "original_to_ours", "translate"]
