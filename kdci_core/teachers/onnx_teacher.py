"""A black-box teacher: an ONNX classifier run by onnxruntime, for a model whose Python code the
user cannot share.

The file is judged first (:mod:`.onnx_graph`: standard operator domains only, external data only
beside it, the memory budget); onnxruntime then runs it on the CPU (CUDA only where onnxruntime
reports its provider), with no custom-op library registered. Classes and input shape come from
the graph, so no architecture is named. Such a teacher gives its outputs and nothing else: no
penultimate features, no BatchNorm statistics, no gradients (``capabilities``), so only the
methods that need no more (``methods.needs``) can use it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..common.errors import InputError
from ..common.paths import file_sha256
from .load import TeacherBundle
from .onnx_graph import OnnxGraph, is_onnx_path, onnx_input_shape, read_onnx_graph

ONNX_ARCH = "onnx"
#: what an ONNX teacher can serve (``teachers.capabilities``; the methods' needs use these names)
ONNX_CAPABILITIES = frozenset({"logits"})
BLACK_BOX = "an ONNX teacher is a black box that gives only its outputs"
#: images per onnxruntime call: bounds the host memory of one call, whatever batch is asked for
MAX_BATCH = 256
_NUMPY = {"FLOAT": np.float32, "FLOAT16": np.float16, "DOUBLE": np.float64}

__all__ = ["BLACK_BOX", "MAX_BATCH", "ONNX_ARCH", "ONNX_CAPABILITIES", "OnnxTeacher", "is_onnx_path",
           "load_onnx_teacher", "onnx_input_shape"]


def _providers(device: torch.device) -> list[str]:
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(graph: OnnxGraph, device: torch.device):
    """An onnxruntime session of the checked file: no custom-op library, this process's threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: its warnings are not the user's business
    try:
        return ort.InferenceSession(str(graph.path), sess_options=opts, providers=_providers(device))
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own exception types)
        raise InputError(f"ONNX teacher {graph.path}: expected a graph onnxruntime can run, found: "
                         f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


class OnnxTeacher(nn.Module):
    """The zoo's classifier contract around an onnxruntime session: ``forward(x)`` -> logits on
    ``x``'s device and dtype, computed on the host in chunks, never with gradients. It has no
    parameters; ``return_features=True`` is refused (a black box has none to give)."""

    capabilities = ONNX_CAPABILITIES
    black_box = True

    def __init__(self, graph: OnnxGraph, device: torch.device | str = "cpu",
                 max_batch: int = MAX_BATCH):
        super().__init__()
        if graph.input_type not in _NUMPY:
            raise InputError(f"ONNX teacher {graph.path}: input {graph.input_name!r}: expected "
                             f"{', '.join(_NUMPY)} images, found {graph.input_type}")
        self.graph = graph
        self.num_classes, self.in_channels = graph.num_classes, graph.channels
        self.feature_dim = None
        self.input_shape = graph.input_shape
        self.dtype = _NUMPY[graph.input_type]
        self.chunk = graph.batch or max(1, int(max_batch))
        self.session = _session(graph, torch.device(device))

    def extra_repr(self) -> str:
        c, h, w = self.input_shape
        return f"{self.graph.path.name}: N x {c} x {h} x {w} -> N x {self.num_classes}"

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if return_features:
            raise InputError("teacher features: expected a teacher that gives its penultimate "
                             f"features, found {BLACK_BOX} (the need 'features' is missing)")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"ONNX teacher {self.graph.path.name}: expected N x "
                             f"{' x '.join(map(str, self.input_shape))} images, found {tuple(x.shape)}")
        out_dtype = x.dtype if x.is_floating_point() else torch.float32
        host = x.detach().to("cpu", torch.float32).numpy().astype(self.dtype, copy=False)
        parts = [self._run(host[i:i + self.chunk]) for i in range(0, len(host), self.chunk)]
        logits = np.concatenate(parts) if parts else np.zeros((0, self.num_classes), np.float32)
        return torch.from_numpy(np.ascontiguousarray(logits, np.float32)).to(x.device, out_dtype)

    def _run(self, part: np.ndarray) -> np.ndarray:
        n = len(part)
        if self.graph.batch and n < self.graph.batch:  # a fixed batch size: pad, then drop the pad
            part = np.concatenate([part, np.zeros((self.graph.batch - n, *part.shape[1:]), part.dtype)])
        try:
            out = self.session.run([self.graph.output_name], {self.graph.input_name: part})[0]
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"ONNX teacher {self.graph.path.name}: onnxruntime failed on a batch "
                             f"of {tuple(part.shape)}: {_first_line(exc)}") from None
        if out.ndim != 2 or out.shape[1] != self.num_classes or len(out) < n:
            raise InputError(f"ONNX teacher {self.graph.path.name}: expected N x {self.num_classes} "
                             f"logits, found an output of shape {tuple(out.shape)}")
        return out[:n]


def check_fits(graph: OnnxGraph, *, in_channels: int | None, image_size: int | None,
               what: str) -> None:
    """Refuse a graph whose input is not the data's ``in_channels x image_size x image_size``."""
    if in_channels is not None and graph.channels != in_channels:
        raise InputError(f"{what}: input channel mismatch: the data has {in_channels} channel(s), "
                         f"the ONNX graph expects {graph.channels}")
    if image_size is not None and (graph.height, graph.width) != (image_size, image_size):
        raise InputError(f"{what}: input size mismatch: the data's images are {image_size} x "
                         f"{image_size}, the ONNX graph expects {graph.height} x {graph.width}")


def load_onnx_teacher(path, *, device: torch.device | str = "cpu", num_classes: int | None = None,
                      in_channels: int | None = None, image_size: int | None = None) -> TeacherBundle:
    """Check and open an ONNX teacher (see :mod:`.onnx_graph`); ``num_classes``/``in_channels``/
    ``image_size`` (the data's, when known) are checked against its graph, ``image_size`` also
    fills a symbolic H and W."""
    graph = read_onnx_graph(path, image_size=image_size)
    what = f"ONNX teacher {graph.path}"
    if num_classes is not None and graph.num_classes != int(num_classes):
        raise InputError(f"{what}: class count mismatch: expected {int(num_classes)} classes, the "
                         f"graph's output has {graph.num_classes}")
    check_fits(graph, in_channels=in_channels, image_size=image_size, what=what)
    model = OnnxTeacher(graph, device).eval()
    c, h, w = graph.input_shape
    meta = {**graph.metadata, "input_shape": f"{c}x{h}x{w}",
            "batch": str(graph.batch) if graph.batch else "any"}
    return TeacherBundle(model=model, arch=ONNX_ARCH, num_classes=graph.num_classes,
                         in_channels=graph.channels, source=str(graph.path), checkpoint_format="onnx",
                         parameter_count=graph.parameter_count, metadata=meta,
                         sha256=file_sha256(graph.path))
