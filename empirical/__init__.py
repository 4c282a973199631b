"""Diffusion purifiers, randomness replay and attacks on real images (paper Sec. 5-6)."""
