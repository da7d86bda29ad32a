"""Keep an animation's colours from drifting: match each repainted frame to the first one.

Img2img at a low strength nudges the palette a little every frame, and over a hundred frames the
nudges add up (Deforum's "colour coherence" fixes the same). Each channel's histogram is matched to
the first frame's, the way ``skimage.exposure.match_histograms`` does (values mapped through the
quantiles of the levels present), as a 256-entry lookup table per channel on the uint8 frame:
a few milliseconds at 768 px, and a frame with the first frame's histogram comes back unchanged.
"""

from __future__ import annotations

import numpy as np

LEVELS = 256


def _quantiles(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The levels present in a uint8 channel and the share of pixels at or below each."""
    counts = np.bincount(channel.ravel(), minlength=LEVELS)
    present = np.flatnonzero(counts)
    return present.astype(np.float64), np.cumsum(counts[present]) / channel.size


class ColorReference:
    """The first frame's per-channel histograms; ``match`` maps a frame onto them."""

    def __init__(self, reference: np.ndarray) -> None:
        if reference.ndim != 3 or reference.shape[2] != 3 or reference.dtype != np.uint8:
            raise ValueError(f"the colour reference is an H×W×3 uint8 frame, got {reference.shape} "
                             f"{reference.dtype}")
        self._channels = [_quantiles(reference[:, :, c]) for c in range(3)]

    def match(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` (H×W×3 uint8) with each channel's histogram matched to the reference's."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a frame is H×W×3 uint8, got {frame.shape} {frame.dtype}")
        out = np.empty_like(frame)
        for c, (ref_levels, ref_q) in enumerate(self._channels):
            channel = frame[:, :, c]
            levels, q = _quantiles(channel)
            mapped = np.interp(q, ref_q, ref_levels)
            lut = np.zeros(LEVELS, dtype=np.uint8)
            lut[levels.astype(np.intp)] = np.clip(np.rint(mapped), 0, LEVELS - 1).astype(np.uint8)
            out[:, :, c] = lut[channel]
        return out
