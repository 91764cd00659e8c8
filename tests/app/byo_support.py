"""What the "bring your own model" page tests share: a user's own small teachers (a torchvision
checkpoint, an ONNX graph of a network of theirs), an upload through ``st.file_uploader`` as
AppTest can drive it, and a typed name in a selectbox that accepts new options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.user_models import TinyNet


class Uploaded:
    """What ``st.file_uploader`` returns for one chosen file (AppTest cannot drive the widget)."""

    def __init__(self, path, file_id: str | None = None):
        self.name, self._data = path.name, path.read_bytes()
        self.size, self.file_id = len(self._data), file_id or f"test-{path.name}-{len(self._data)}"

    def getvalue(self) -> bytes:
        return self._data


def uploading(monkeypatch, files: dict) -> dict:
    """Make ``st.file_uploader(label)`` return ``files[label]`` (a path, or None: nothing chosen);
    returns ``files``, which a test may change between runs (another file chosen)."""
    import streamlit

    original = streamlit.file_uploader

    def fake(label, *args, **kwargs):
        if label not in files:
            return original(label, *args, **kwargs)
        return Uploaded(files[label]) if files[label] is not None else None

    monkeypatch.setattr(streamlit, "file_uploader", fake)
    return files


@pytest.fixture
def typed_options(monkeypatch):
    """AppTest's selectbox can only send one of its options; a browser sends a typed new option
    as its text (``accept_new_options``). This sends it the same way."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from streamlit.testing.v1.element_tree import Selectbox

    original = Selectbox._widget_state

    def state(self):
        value = self.value
        if value is not None and self.format_func(value) not in self.options:
            ws = WidgetState()
            ws.id = self.id
            ws.string_value = str(value)
            return ws
        return original.fget(self)

    monkeypatch.setattr(Selectbox, "_widget_state", property(state))


def onnx_teacher(folder):
    """TinyNet trained full-batch on digits (about 97%), exported as one self-contained .onnx."""
    from kdci_core.data import load_dataset

    data = load_dataset("digits")
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(net(data.train.images), data.train.labels).backward()
        opt.step()
    path = folder / "my_net.onnx"
    torch.onnx.export(net.eval(), (torch.randn(2, 1, 8, 8),), str(path), input_names=["images"],
                      output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                      verbose=False, external_data=False)
    return path


def torchvision_teacher(folder, name="tv_resnet18.safetensors", epochs: int = 0):
    """A torchvision resnet18 for 10 classes and 1 channel, saved as a plain state dict: what a
    user's own script writes. Untrained (chance accuracy) by default; ``epochs`` of Adam on
    digits at their own 8 px (2 epochs: about 70% in about 16 s on one core)."""
    from kdci_core.models import build_model
    from kdci_core.models.weights import save_checkpoint

    torch.manual_seed(0)
    model = build_model("tv:resnet18", num_classes=10, in_channels=1)
    if epochs:
        from kdci_core.data import load_dataset

        train = load_dataset("digits").train
        opt = torch.optim.Adam(model.parameters(), lr=0.003)
        for _ in range(epochs):
            for idx in torch.randperm(len(train.labels)).split(128):
                opt.zero_grad()
                nn.functional.cross_entropy(model(train.images[idx]), train.labels[idx]).backward()
                opt.step()
    return save_checkpoint(model.eval(), folder / name)
