"""A trained classifier out the door: safetensors weights, a TorchScript module or an ONNX graph
(batch dimension dynamic, the input size fixed), each loadable without this project's code
(ONNX and TorchScript) or with only the architecture's definition (safetensors).

Every format is written in a temporary folder beside the target and moved into place when
complete (``common.atomic_files``), so an interrupted export leaves the previous file."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..common.atomic_files import replacing_group
from ..common.errors import InputError
from .weights import save_checkpoint

FORMATS = ("safetensors", "torchscript", "onnx")
#: weights up to this size are kept inside the .onnx file (protobuf's limit is 2 GiB)
ONNX_INLINE_LIMIT = 1.5 * 2**30
SUFFIXES = {"safetensors": (".safetensors",), "torchscript": (".pt", ".ts", ".torchscript"), "onnx": (".onnx",)}


def export_model(model: nn.Module, fmt: str, out: Path | str, example: torch.Tensor,
                 metadata: dict | None = None) -> Path:
    """Write ``model`` (eval mode, CPU) as ``fmt`` to ``out``; ``example``: one input batch of the
    deployed shape (its batch size is left dynamic)."""
    if fmt not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}, found {fmt!r}")
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES[fmt]:
        raise InputError(f"--out {out}: a {fmt} file should end in {' or '.join(SUFFIXES[fmt])}, "
                         f"found {out.suffix or 'no suffix'!r}")
    model = model.to("cpu").eval()
    example = example.to("cpu")
    with replacing_group(out) as folder:  # a kill or an error mid-export leaves the old file
        _write(model, fmt, folder / out.name, example, metadata)
    return out


def _write(model: nn.Module, fmt: str, out: Path, example: torch.Tensor, metadata: dict | None) -> None:
    if fmt == "safetensors":
        save_checkpoint(model, out, metadata=metadata)
    elif fmt == "torchscript":
        # torch deprecates TorchScript (a FutureWarning per trace); the file is still the format
        # that runs on libtorch without Python, so it stays, quietly (torch.jit.script fails on
        # our models)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
            traced = torch.jit.trace(Logits(model), example)
        traced.save(str(out))
    else:
        # one self-contained file (a download or a copy carries it all): ONNX keeps weights inside
        # up to protobuf's 2 GiB, beyond which they must go to a ``.data`` file beside it
        weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Logits(model), (example,), str(out), dynamo=True, verbose=False,
                              external_data=weight_bytes >= ONNX_INLINE_LIMIT,
                              input_names=["images"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},))


def written_files(out: Path | str) -> list[Path]:
    """The files an export to ``out`` consists of: ``out``, then its ONNX external-data files
    (named in the graph's initializers; none below ``ONNX_INLINE_LIMIT``)."""
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        return [out]
    import onnx

    graph = onnx.load(str(out), load_external_data=False).graph
    names = {e.value for t in graph.initializer for e in t.external_data if e.key == "location"}
    return [out, *(out.parent / n for n in sorted(names))]


class Logits(nn.Module):
    """The classifier with ``forward(images) -> logits`` only (what an exported graph exposes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)
