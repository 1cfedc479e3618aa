"""Exports the engine benchmark models with PyTorch (Debian's python3-torch).

    /usr/bin/python3 bench/models/export.py OUT_DIR

Writes mlp.onnx (784-512-256-10), cnn.onnx (a small CNN on 3x32x32),
transformer.onnx (2-layer encoder, d_model 128, 4 heads, sequence 64) and
big.onnx (~100 MB of weights, for load time), each with a dynamic batch
dimension, plus <name>_x.npy / <name>_y.npy reference input and output.
Deterministic (fixed seeds); skips models that already exist.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                 nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.Conv2d(64, 64, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=512, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(128, 2)

    def forward(self, x):
        return self.head(self.encoder(x))


class Big(nn.Module):
    """About 100 MB of float32 weights behind a small compute path."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(2560, 2560) for _ in range(4)])

    def forward(self, x):
        return self.layers(x)


def export(name, model, example, out_dir):
    path = os.path.join(out_dir, name + ".onnx")
    if os.path.exists(path):
        return
    model.eval()
    # Export with autograd on: in eval mode under no_grad, PyTorch swaps the
    # transformer layers for a fused kernel that has no ONNX form.
    torch.onnx.export(model, example, path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17)
    with torch.no_grad():
        np.save(os.path.join(out_dir, name + "_x.npy"), example.numpy())
        np.save(os.path.join(out_dir, name + "_y.npy"), model(example).numpy())


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    export("mlp", MLP(), torch.randn(4, 784), out_dir)
    cnn = CNN()
    for m in cnn.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    export("cnn", cnn, torch.randn(4, 3, 32, 32), out_dir)
    export("transformer", Transformer(), torch.randn(4, 64, 128), out_dir)
    export("big", Big(), torch.randn(2, 2560), out_dir)


if __name__ == "__main__":
    main()
