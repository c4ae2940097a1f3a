"""Demo model shipped with pycnn: a small CNN for 8x8 handwritten digits.

* ``MODEL_PATH`` -- ``digits_cnn.onnx`` (opset 17). Input ``"image"`` float32
  ``[N, 1, 8, 8]`` with pixels scaled to [0, 1]; output ``"logits"`` float32
  ``[N, 10]``.
* ``SAMPLES_PATH`` -- ``samples.npz`` with 200 held-out test images
  (``images`` float32 ``[200, 1, 8, 8]``, ``labels`` int64 ``[200]``).

Only numpy is needed here. ``pycnn/demo/train.py`` regenerates both files
(that needs torch and scikit-learn, which are never needed at run time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MODEL_PATH", "SAMPLES_PATH", "load_samples"]

_HERE = Path(__file__).resolve().parent

MODEL_PATH: Path = _HERE / "digits_cnn.onnx"
SAMPLES_PATH: Path = _HERE / "samples.npz"


def load_samples() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``: float32 ``[200, 1, 8, 8]`` and int64 ``[200]``."""
    with np.load(SAMPLES_PATH, allow_pickle=False) as z:
        images = np.ascontiguousarray(z["images"], dtype=np.float32)
        labels = np.ascontiguousarray(z["labels"], dtype=np.int64)
    return images, labels
