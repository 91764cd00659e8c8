"""Models of "a user's own code" shared by the tests that play a user (ONNX teachers, uploads)."""

import torch
import torch.nn as nn


class TinyNet(nn.Module):
    """A user's own classifier for 8 x 8 digits: conv, ReLU, pooling, two Linears; no BatchNorm."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc1 = nn.Linear(8 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))
