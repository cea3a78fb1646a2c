"""avdiff: audio-conditioned video generation with latent diffusion."""

__version__ = "0.1.0"
