"""Makes the demo model repository of `make run` (Debian's python3-torch,
python3-sklearn, python3-onnx):

    /usr/bin/python3 scripts/make_examples.py [OUT_DIR]   # default examples/models

iris/1/model.onnx   logistic regression on the iris data (4 -> 3)
iris/2/model.onnx   a small MLP on the same data (4 -> 16 -> 3)
iris/config.json    both versions served (latest 2), dynamic batching on

Each model takes "input" [batch, 4] float32 (sepal length, sepal width,
petal length, petal width, in cm) and answers "probabilities" [batch, 3]
and "label" [batch] int64 (0 setosa, 1 versicolor, 2 virginica).
Deterministic: fixed seeds, full-batch training.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_iris


class Classifier(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        p = torch.softmax(self.body(x), dim=1)
        return p, torch.argmax(p, dim=1)


def train(body, x, y, steps, lr):
    torch.manual_seed(0)
    for p in body.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
        else:
            nn.init.zeros_(p)
    opt = torch.optim.Adam(body.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(body(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (body(x).argmax(1) == y).float().mean().item()
    return acc


def export(model, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.eval()
    example = torch.zeros(1, 4)
    torch.onnx.export(model, example, path, input_names=["input"], output_names=["probabilities", "label"],
                      dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}, "label": {0: "batch"}},
                      opset_version=17)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "examples", "models")
    data = load_iris()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    torch.manual_seed(0)
    logistic = nn.Linear(4, 3)
    acc1 = train(logistic, x, y, 500, 0.05)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    acc2 = train(mlp, x, y, 500, 0.02)
    export(Classifier(logistic), os.path.join(out, "iris", "1", "model.onnx"))
    export(Classifier(mlp), os.path.join(out, "iris", "2", "model.onnx"))
    config = {
        "version_policy": {"latest": 2},
        "max_batch_size": 64,
        "max_queue_delay_us": 0,
        "max_queue_size": 1024,
        "version_labels": {"stable": 1, "canary": 2},
    }
    with open(os.path.join(out, "iris", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    # One request to try, the first flower of each species.
    sample = np.array([data.data[0], data.data[50], data.data[100]], dtype=np.float32)
    request = {"inputs": [{"name": "input", "shape": list(sample.shape), "datatype": "FP32",
                           "data": [round(float(v), 2) for v in sample.ravel()]}]}
    with open(os.path.join(out, "..", "iris_request.json"), "w") as f:
        json.dump(request, f)
        f.write("\n")
    print(f"iris v1 logistic regression: train accuracy {acc1:.3f}")
    print(f"iris v2 MLP: train accuracy {acc2:.3f}")


if __name__ == "__main__":
    main()
