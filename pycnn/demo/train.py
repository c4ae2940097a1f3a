"""Re-train the demo digits CNN that ships inside ``pycnn.demo``.

This script is a *build-time* tool: it (re)creates the two data files that
live next to it,

* ``digits_cnn.onnx`` -- a small CNN (opset 17) classifying 8x8 handwritten
  digits.  Input ``"image"``: float32 ``[N, 1, 8, 8]`` with pixel values
  scaled to [0, 1] (raw 0..16 values divided by 16).  Output ``"logits"``:
  float32 ``[N, 10]``.
* ``samples.npz`` -- 200 held-out test images that were never used for
  training: ``images`` float32 ``[200, 1, 8, 8]`` (already scaled like the
  model input) and ``labels`` int64 ``[200]``.

Data comes from scikit-learn's bundled ``load_digits()`` set (1797 images,
no download).  The graph is written by hand with ``onnx.helper`` from the
trained PyTorch weights (no ``torch.onnx.export``), keeping the
BatchNormalization nodes with their trained running statistics, so the model
exercises: Conv (plain and grouped), BatchNormalization, Relu, MaxPool,
GlobalAveragePool, Flatten and Gemm.

How to run (from the repository root)::

    pip install torch scikit-learn onnx     # only needed to re-train
    python pycnn/demo/train.py              # or: python -m pycnn.demo.train
    python pycnn/demo/train.py --out-dir /tmp/demo --epochs 40

torch, scikit-learn and onnx are needed ONLY to re-train / re-export; the
pycnn package never imports them at run time (``pycnn.demo`` itself needs
numpy only).  If onnxruntime is installed, the exported model is checked
against the PyTorch model as a last step.

The run is deterministic (fixed seeds, one thread, deterministic algorithms)
and takes well under a minute on one CPU core.
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from pathlib import Path

import numpy as np

SEED = 0
N_TEST = 200
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17
BN_EPS = 1e-5

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def load_split(seed: int = SEED):
    """Return (x_train, y_train, x_test, y_test); x float32 [n,1,8,8] in [0,1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=N_TEST, random_state=seed, stratify=y
    )
    return (
        np.ascontiguousarray(x_tr),
        np.ascontiguousarray(y_tr),
        np.ascontiguousarray(x_te),
        np.ascontiguousarray(y_te),
    )


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------
def build_model():
    import torch.nn as nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=True)
            self.bn1 = nn.BatchNorm2d(16, eps=BN_EPS)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=True)
            self.bn2 = nn.BatchNorm2d(32, eps=BN_EPS)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv3 = nn.Conv2d(32, 32, 3, padding=1, groups=4, bias=True)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(32, 10)
            self.relu = nn.ReLU()

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))  # [N,16,8,8]
            x = self.relu(self.bn2(self.conv2(x)))  # [N,32,8,8]
            x = self.pool(x)  # [N,32,4,4]
            x = self.relu(self.conv3(x))  # [N,32,4,4]
            x = self.gap(x).flatten(1)  # [N,32]
            return self.fc(x)  # [N,10]

    return DigitsCNN()


def train(model, x_tr, y_tr, epochs: int, seed: int = SEED):
    import torch

    g = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(x_tr)
    yt = torch.from_numpy(y_tr)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = 64
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = perm[i : i + batch]
            xb = xt[idx]
            # light augmentation: random shift by up to one pixel
            dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0 or epoch == 0:
            print(f"epoch {epoch + 1:3d}/{epochs}  loss {total / len(xt):.4f}")
    model.eval()
    return model


def predict(model, x):
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# --------------------------------------------------------------------------
# ONNX export (hand-built graph)
# --------------------------------------------------------------------------
def to_onnx(model):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sd = {
        k: v.detach().cpu().numpy().astype(np.float32)
        for k, v in model.state_dict().items()
        if v.dtype.is_floating_point
    }
    inits = []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    nodes = []

    def conv(x, prefix, out, group=1):
        w = init(f"{prefix}.weight", sd[f"{prefix}.weight"])
        b = init(f"{prefix}.bias", sd[f"{prefix}.bias"])
        k = sd[f"{prefix}.weight"].shape[2:]
        nodes.append(helper.make_node(
            "Conv", [x, w, b], [out], name=prefix,
            kernel_shape=list(k), pads=[1, 1, 1, 1], strides=[1, 1],
            dilations=[1, 1], group=group))
        return out

    def bn(x, prefix, out):
        ins = [
            x,
            init(f"{prefix}.weight", sd[f"{prefix}.weight"]),
            init(f"{prefix}.bias", sd[f"{prefix}.bias"]),
            init(f"{prefix}.running_mean", sd[f"{prefix}.running_mean"]),
            init(f"{prefix}.running_var", sd[f"{prefix}.running_var"]),
        ]
        nodes.append(helper.make_node("BatchNormalization", ins, [out], name=prefix,
                                      epsilon=BN_EPS))
        return out

    def relu(x, out):
        nodes.append(helper.make_node("Relu", [x], [out], name=out))
        return out

    h = conv("image", "conv1", "conv1_out")
    h = bn(h, "bn1", "bn1_out")
    h = relu(h, "relu1")
    h = conv(h, "conv2", "conv2_out")
    h = bn(h, "bn2", "bn2_out")
    h = relu(h, "relu2")
    nodes.append(helper.make_node("MaxPool", [h], ["pool"], name="pool",
                                  kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]))
    h = conv("pool", "conv3", "conv3_out", group=model.conv3.groups)
    h = relu(h, "relu3")
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1))
    nodes.append(helper.make_node(
        "Gemm", ["flat", init("fc.weight", sd["fc.weight"]), init("fc.bias", sd["fc.bias"])],
        ["logits"], name="fc", alpha=1.0, beta=1.0, transA=0, transB=1))

    graph = helper.make_graph(
        nodes, "digits_cnn",
        inputs=[helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    m = helper.make_model(
        graph,
        producer_name="pycnn.demo.train",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string="8x8 digits classifier; input pixels scaled to [0,1] (/16).",
    )
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


# --------------------------------------------------------------------------
# byte-reproducible .npz (np.savez stamps the current time into the zip)
# --------------------------------------------------------------------------
def save_npz(path: Path, **arrays):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=HERE,
                    help="where to write digits_cnn.onnx and samples.npz (default: next to this file)")
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    x_tr, y_tr, x_te, y_te = load_split()
    print(f"train {len(x_tr)} images, test (held out) {len(x_te)} images")

    model = train(build_model(), x_tr, y_tr, args.epochs)
    train_acc = float((predict(model, x_tr).argmax(1) == y_tr).mean())
    logits_te = predict(model, x_te)
    test_acc = float((logits_te.argmax(1) == y_te).mean())
    print(f"torch  train accuracy {train_acc:.4f}")
    print(f"torch  test  accuracy {test_acc:.4f}")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = args.out_dir / "digits_cnn.onnx"
    samples_path = args.out_dir / "samples.npz"

    m = to_onnx(model)
    model_path.write_bytes(m.SerializeToString())
    save_npz(samples_path, images=x_te.astype(np.float32), labels=y_te.astype(np.int64))
    print(f"wrote {model_path} ({model_path.stat().st_size} bytes)")
    print(f"wrote {samples_path} ({samples_path.stat().st_size} bytes)")
    print("ops:", sorted({n.op_type for n in m.graph.node}))

    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed; skipping the ONNX check")
        return
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    with np.load(samples_path) as z:
        imgs, labels = z["images"], z["labels"]
    ort_logits = sess.run(["logits"], {"image": imgs})[0]
    ort_acc = float((ort_logits.argmax(1) == labels).mean())
    max_diff = float(np.abs(ort_logits - logits_te).max())
    print(f"onnxruntime test accuracy {ort_acc:.4f}  (max |logit diff| vs torch {max_diff:.2e})")
    assert ort_acc == test_acc, "ONNX model disagrees with the torch model"
    assert max_diff < 1e-3, max_diff


if __name__ == "__main__":
    main()
