"""Models exported from PyTorch (Debian's python3-torch) run through
`stratus predict` and match PyTorch within rtol 1e-4 / atol 1e-5."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class MLP(nn.Module):
    def __init__(self, sizes, act):
        super().__init__()
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), act()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), nn.Conv2d(16, 24, 1), nn.ReLU6(),
            nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(24, 32, 3, dilation=2, padding=2), nn.SiLU(),
            nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(32, 7)

    def forward(self, x):
        return torch.softmax(self.head(torch.flatten(self.f(x), 1)), dim=-1)


class Encoder(nn.Module):
    def __init__(self, d, heads, layers, act):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=heads, dim_feedforward=2 * d, dropout=0.0,
                                           activation=act, batch_first=True, norm_first=act == "gelu")
        self.enc = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.emb = nn.Embedding(50, d)
        self.head = nn.Linear(d, 3)

    def forward(self, tokens):
        return self.head(self.enc(self.emb(tokens)))


def export_and_check(stratus, tmp_path, model, example, dynamic=True, opset=17):
    torch.manual_seed(0)
    model.eval()
    path = tmp_path / "model.onnx"
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
    torch.onnx.export(model, example, str(path), input_names=["input"], output_names=["output"],
                      dynamic_axes=axes, opset_version=opset)
    with torch.no_grad():
        expected = model(example).numpy()
    np.save(tmp_path / "x.npy", example.numpy())
    r = stratus("predict", path, "--input", f"input={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "out")
    assert r.code == 0, r.err
    got = np.load(tmp_path / "out" / "output.npy")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sizes,act", [([20, 64, 32, 5], nn.ReLU), ([7, 33, 1], nn.Tanh),
                                       ([300, 128, 128, 10], nn.Sigmoid), ([16, 16], nn.GELU)])
def test_mlp(stratus, tmp_path, sizes, act):
    torch.manual_seed(1)
    export_and_check(stratus, tmp_path, MLP(sizes, act), torch.randn(5, sizes[0]))


def test_mlp_opset_11(stratus, tmp_path):
    torch.manual_seed(2)
    export_and_check(stratus, tmp_path, MLP([10, 20, 3], nn.LeakyReLU), torch.randn(3, 10), opset=11)


def test_cnn(stratus, tmp_path):
    torch.manual_seed(3)
    model = CNN()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    export_and_check(stratus, tmp_path, model, torch.randn(2, 3, 28, 28))


@pytest.mark.parametrize("d,heads,layers,act", [(32, 4, 2, "relu"), (48, 3, 1, "gelu")])
def test_transformer_encoder(stratus, tmp_path, d, heads, layers, act):
    torch.manual_seed(4)
    model = Encoder(d, heads, layers, act)
    tokens = torch.randint(0, 50, (2, 11))
    with torch.enable_grad():  # keeps PyTorch off its fused (unexportable) path
        export_and_check(stratus, tmp_path, model, tokens)


def test_batches_stream_through(stratus, tmp_path):
    """More rows than --batch-size: outputs match a single run (to rounding:
    GEMM kernels sum in a different order for small and large batches)."""
    torch.manual_seed(5)
    export_and_check(stratus, tmp_path, MLP([6, 8, 2], nn.ReLU), torch.randn(1000, 6))
    r = stratus("predict", tmp_path / "model.onnx", "--input", f"input={tmp_path / 'x.npy'}",
                "--output-dir", tmp_path / "small", "--batch-size", "64")
    assert r.code == 0, r.err
    np.testing.assert_allclose(np.load(tmp_path / "small" / "output.npy"),
                               np.load(tmp_path / "out" / "output.npy"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [13, 17])
def test_layernorm_and_gelu_patterns(stratus, tmp_path, opset):
    """Before opset 17 LayerNorm is exported as ReduceMean/Sub/Pow/Sqrt/Div
    and GELU as Div/Erf/Add/Mul; both are fused at load and must match."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 4))
    export_and_check(stratus, tmp_path, model, torch.randn(3, 16), opset=opset)


def test_transformer_opset_13(stratus, tmp_path):
    torch.manual_seed(7)
    model = Encoder(32, 4, 1, "gelu")
    with torch.enable_grad():
        export_and_check(stratus, tmp_path, model, torch.randint(0, 50, (2, 9)), opset=13)
