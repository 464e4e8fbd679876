"""Backbones (small CNN, CIFAR ResNet-18/50) and heads (MLP projector / predictor)."""
from gpsviz.models.backbones import (BasicBlock, Bottleneck, CifarResNet, SmallCNN, available_backbones, build_backbone,
                                     resnet18_cifar, resnet50_cifar)
from gpsviz.models.heads import MLPHead

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "MLPHead",
    "SmallCNN",
    "available_backbones",
    "build_backbone",
    "resnet18_cifar",
    "resnet50_cifar",
]
