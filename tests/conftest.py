"""Shared fixtures: tiny backbones and small images, nothing downloaded."""

import numpy as np
import pytest
import torch
from torch import nn


class TinyConvNet(nn.Module):
    """A 2-layer conv classifier standing in for a pre-trained source model."""

    def __init__(self, n_source: int = 6, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(8, n_source)

    def forward(self, x):
        return self.fc(self.body(x))


class TinyMLP(nn.Module):
    """Tabular stand-in for sklearn's estimator checks (any number of features)."""

    def __init__(self, n_source: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LazyLinear(16), nn.ReLU())
        self.head = nn.Linear(16, n_source)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture
def tiny_backbone():
    torch.manual_seed(0)
    return TinyConvNet()


def make_image_data():
    """60 RGB 8x8 float images in [0, 1], 3 string classes, learnable by colour."""
    rng = np.random.default_rng(0)
    y = np.array(["cat", "dog", "eel"])[np.arange(60) % 3]
    X = rng.random((60, 3, 8, 8)).astype(np.float32) * 0.5
    for i, label in enumerate(["cat", "dog", "eel"]):
        X[y == label, i] += 0.5
    return X, y


@pytest.fixture
def image_data():
    """60 RGB 8x8 float images in [0, 1], 3 string classes, learnable by colour."""
    return make_image_data()
