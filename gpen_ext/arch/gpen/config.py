"""A GPEN network's hyper-parameters and the channels they give, without torch."""

from dataclasses import dataclass


@dataclass(frozen=True)
class GPENConfig:
    size: int
    style_dim: int
    n_mlp: int
    channel_multiplier: int
    narrow: float

    def build(self):
        """The network (random weights) of this configuration."""
        from .network import GPEN  # here: settings and the command line's help need no torch
        return GPEN(self.size, self.style_dim, self.n_mlp, self.channel_multiplier, self.narrow)


def channels_for(size, channel_multiplier, narrow):
    """Feature channels at each resolution 4..size, as the released configurations use."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
            128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
            512: 32 * channel_multiplier, 1024: 16 * channel_multiplier,
            2048: 8 * channel_multiplier}
    return {res: int(ch * narrow) for res, ch in base.items() if res <= size}
