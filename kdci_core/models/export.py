"""A trained classifier out the door: safetensors weights, a TorchScript module or an ONNX graph
(batch dimension dynamic, the input size fixed), each loadable without this project's code
(ONNX and TorchScript) or with only the architecture's definition (safetensors)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

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
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    example = example.to("cpu")
    if fmt == "safetensors":
        return save_checkpoint(model, out, metadata=metadata)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(Logits(model), example)
        traced.save(str(out))
        return out
    # one self-contained file (a download or a copy carries it all): ONNX keeps weights inside
    # up to protobuf's 2 GiB, beyond which they must go to a ``.data`` file beside it
    weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(model), (example,), str(out), dynamo=True, verbose=False,
                          external_data=weight_bytes >= ONNX_INLINE_LIMIT,
                          input_names=["images"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    return out


class Logits(nn.Module):
    """The classifier with ``forward(images) -> logits`` only (what an exported graph exposes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)
