"""The encoders a restored clip can be written with, in one table: the video codec option takes
its choices and its quality ceiling from here (options.py), the writer its encoders and what
`auto` means for a file (video.py).
"""

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Encoder:
    ffmpeg: str                 # FFmpeg's encoder
    pixel_format: str           # the pixel format it usually writes
    max_crf: int = None         # the largest constant rate factor it takes; None: none
    even_sides: bool = False    # subsampled chroma needs even sides: odd clips keep full chroma
    options: dict = field(default_factory=dict)  # FFmpeg options of its own


# Each encoder quiet, with a look-ahead of 10 frames (x264's default is 40, VP9's 25): at
# 1080p the default holds about 200 MB of frames more, which a clip of a few frames never
# reaches, for a few per cent of bitrate at the same quality.
ENCODERS = {
    "h264": Encoder("libx264", "yuv420p", 51, True, {"rc-lookahead": "10"}),
    "h265": Encoder("libx265", "yuv420p", 51, True,
                    {"x265-params": "log-level=error:rc-lookahead=10"}),
    "vp9": Encoder("libvpx-vp9", "yuv420p", 63, options={"lag-in-frames": "10"}),
    "av1": Encoder("libsvtav1", "yuv420p", 63, options={"svtav1-params": "lp=0"}),
    "ffv1": Encoder("ffv1", "yuv444p"),
    "png": Encoder("png", "rgb24"),
}
HIGHEST_CRF = max(encoder.max_crf for encoder in ENCODERS.values() if encoder.max_crf)


def crf_ceilings():
    """What each codec that takes a quality takes: "h264 and h265 up to 51, ..."."""
    by_ceiling = {}
    for name, encoder in ENCODERS.items():
        if encoder.max_crf:
            by_ceiling.setdefault(encoder.max_crf, []).append(name)
    return ", ".join(f"{' and '.join(names)} up to {ceiling}"
                     for ceiling, names in sorted(by_ceiling.items()))


# containers that hold H.265, which players decode at 10 bits (H.264 at 10 bits many cannot)
HEVC_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".ts", ".mts", ".m2ts")


def codec_for(path, codec, deep=False):
    """The codec `auto` means for a file: h264, which plays everywhere; vp9 in WebM, which
    takes no h264; h265 for a clip of more than 8 bits where the container takes it."""
    if codec != "auto":
        return codec
    suffix = Path(path).suffix.lower()
    if suffix == ".webm":
        return "vp9"
    return "h265" if deep and suffix in HEVC_SUFFIXES else "h264"
