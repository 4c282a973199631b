"""Classifiers and diffusion-model adapters."""
