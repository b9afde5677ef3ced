"""File I/O at the edge of the pipeline: images and videos in, videos/GIFs/frame folders out.

Everything user-facing fails with `dagan.errors.DaganError` naming the file; writers are atomic.
"""

from dagan.io.image import read_image, to_float, to_uint8, write_image
from dagan.io.video import VideoDecodeWarning, VideoInfo, iter_frames, iter_frames_with_preview, probe_video
from dagan.io.writers import FrameWriter, VideoWriter, open_writer

__all__ = [
    "read_image",
    "write_image",
    "to_float",
    "to_uint8",
    "VideoInfo",
    "VideoDecodeWarning",
    "probe_video",
    "iter_frames",
    "iter_frames_with_preview",
    "FrameWriter",
    "VideoWriter",
    "open_writer",
]
