"""Swap every ``BatchNorm2d`` of a module for another normalization built from it (frozen for pretrained trunks,
GroupNorm for heads trained from scratch): one walker for the models that need either."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def replace_batchnorm(module: nn.Module, convert: Callable[[nn.BatchNorm2d], nn.Module]) -> None:
    """Replace, in place, every ``BatchNorm2d`` below ``module`` by ``convert(that BatchNorm)``."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, convert(child))
        else:
            replace_batchnorm(child, convert)
