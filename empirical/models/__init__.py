"""Classifiers and diffusion-model adapters."""
from empirical.models.digits import DigitsCNN, make_digits_scheduler, make_digits_unet
from empirical.models.guided import GuidedUNetAdapter, build_guided_unet
from empirical.models.resnet import ResNet, resnet50
from empirical.models.wideresnet import WideResNet

__all__ = ["DigitsCNN", "GuidedUNetAdapter", "ResNet", "WideResNet", "build_guided_unet", "make_digits_scheduler",
           "make_digits_unet", "resnet50"]
