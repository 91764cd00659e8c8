"""The Teacher page with a user's own model (issue 20 item 5, issue 22 item 1): an architecture
from the zoo, torchvision or timm list (or typed, checked), suggested from the file's layers
when none is chosen; an ONNX graph that needs none; what the file records (metadata, a sidecar)
filling the form; and a teacher near chance that only becomes every page's teacher when the
user confirms."""

from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.app.byo_support import onnx_teacher, torchvision_teacher, typed_options, uploading  # noqa: F401
from tests.helpers import MAIN

UPLOAD = "Upload a checkpoint"


@pytest.fixture
def page(home):
    """The Teacher page in upload mode, nothing remembered from an earlier test."""
    from app.shared import remember

    remember("teacher", None)
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.run()
    at.radio[0].set_value(UPLOAD).run()
    assert not at.exception, at.exception
    yield at
    remember("teacher", None)


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_the_architecture_list_holds_zoo_torchvision_and_timm_names(page):
    options = page.selectbox(key="teacher_arch").options
    for name in ("lenet5", "resnet18", "tv:resnet18", "tv:mobilenet_v3_small", "timm:resnet10t",
                 "timm:mobilenetv3_small_050"):
        assert name in options, name
    assert page.selectbox(key="teacher_arch").value is None  # nothing chosen: suggested from the file


def test_a_torchvision_checkpoint_near_chance_waits_for_confirmation(page, home, tmp_path, monkeypatch):
    """A tv:resnet18 state dict: with no architecture the page names the matches; chosen from
    the list it validates; at chance it is flagged and not made the pages' teacher until 'Use
    it anyway'."""
    uploading(monkeypatch, {"Teacher checkpoint": torchvision_teacher(tmp_path)})
    at = page
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    infos = " ".join(_texts(at.info))
    assert "`tv:resnet18`, `timm:resnet18`; choose one of them" in infos, infos
    at.selectbox(key="teacher_arch").set_value("tv:resnet18").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert "valid tv:resnet18 checkpoint (safetensors)" in _texts(at.success)
    accuracy = float(_metric(at, "Test accuracy").rstrip("%"))
    assert accuracy < 15.0, "an untrained network: chance on digits"
    warning = " ".join(_texts(at.warning))
    for cause in ("within 5 points of chance", "wrong dataset", "normalisation", "wrong architecture",
                  "wrong image size", "Use it anyway"):
        assert cause in warning, (cause, warning)
    assert at.session_state["teacher"]["source"] == "builtin"  # not silently the pages' teacher
    assert any("keep using the built-in digits teacher" in c for c in _texts(at.caption))

    at.button(key="teacher_use_anyway").click().run()
    assert not at.exception, at.exception
    teacher = at.session_state["teacher"]
    assert (teacher["source"], teacher["arch"], teacher["dataset"]) == ("upload", "tv:resnet18", "digits")
    assert teacher["near_chance_confirmed"] and "batchnorm" in teacher["capabilities"]
    at.run()  # the confirmation holds on later runs, and in a new session (the remembered record)
    assert any("You chose to use it anyway" in c for c in _texts(at.caption))
    fresh = AppTest.from_file(MAIN, default_timeout=300)
    fresh.run()
    assert not fresh.exception and fresh.session_state["teacher"]["arch"] == "tv:resnet18"
    assert any("You chose to use it anyway" in c for c in _texts(fresh.caption))


def test_a_typed_name_is_checked_with_close_matches(page, tmp_path, monkeypatch, typed_options):
    uploading(monkeypatch, {"Teacher checkpoint": torchvision_teacher(tmp_path)})
    page.run()
    page.selectbox(key="teacher_arch").set_value("tv:resnet19").run()
    assert not page.exception, page.exception
    errors = _texts(page.error)
    assert errors and errors[0].startswith("'Architecture': unknown architecture 'tv:resnet19'; "
                                           "close matches: tv:resnet18"), errors
    assert page.session_state["teacher"]["source"] == "builtin"


def test_a_wrapped_pt_state_dict_of_a_timm_model(page, tmp_path, monkeypatch):
    """What a user's training loop often saves: ``{"state_dict": ...}`` of a DataParallel model
    (keys prefixed ``module.``) in a .pth; read weights-only and unwrapped."""
    from kdci_core.models import build_model

    torch.manual_seed(0)
    model = build_model("timm:resnet10t", num_classes=10, in_channels=1)
    path = tmp_path / "my_timm.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    uploading(monkeypatch, {"Teacher checkpoint": path})
    at = page
    at.run()
    at.selectbox(key="teacher_arch").set_value("timm:resnet10t").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert [s for s in _texts(at.success) if s.startswith("valid timm:resnet10t checkpoint")], _texts(at.success)
    assert _metric(at, "Classes") == "10" and _metric(at, "Input channels") == "1"


def test_an_onnx_graph_needs_no_architecture_and_says_what_it_serves(page, tmp_path, monkeypatch):
    uploading(monkeypatch, {"Teacher checkpoint": onnx_teacher(tmp_path)})
    at = page
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.selectbox(key="teacher_arch").disabled
    assert any("An ONNX graph is its own architecture" in c for c in _texts(at.caption))
    assert "valid ONNX graph (a black box: its outputs only)" in _texts(at.success)
    assert float(_metric(at, "Test accuracy").rstrip("%")) > 80.0
    serves = " ".join(_texts(at.info))
    assert "It can serve dfnd, plain; not " in serves and "deepinv (needs the teacher's BatchNorm" in serves
    teacher = at.session_state["teacher"]
    assert (teacher["arch"], teacher["capabilities"]) == ("onnx", ["logits"])


@pytest.fixture(scope="module")
def digits16(home, tmp_path_factory):
    """Our own `teacher train` output at 16 px: its metadata records dataset, architecture,
    classes and input."""
    from kdci_core.teachers import train_teacher

    out = tmp_path_factory.mktemp("t16") / "digits16.safetensors"
    train_teacher("digits", "lenet5", epochs=4, out=out, image_size=16, device=torch.device("cpu"))
    return out


def test_the_checkpoints_metadata_fills_the_form(page, digits16, monkeypatch):
    """Issue 22 item 1: a teacher uploaded while the form says another dataset is validated on
    the dataset its metadata names, at its recorded input; a value typed in wins."""
    at = page
    files = uploading(monkeypatch, {"Teacher checkpoint": None})
    at.selectbox(key="teacher_dataset").set_value("fashion-mnist").run()
    files["Teacher checkpoint"] = digits16
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.selectbox(key="teacher_dataset").value == "digits"
    assert at.selectbox(key="teacher_arch").value == "lenet5"
    assert at.number_input(key="teacher_classes").value == 10
    note = " ".join(_texts(at.info))
    assert "checkpoint metadata of digits16.safetensors" in note and "dataset digits" in note
    assert "The form said `fashion-mnist`; the teacher is validated on `digits`" in note, note
    captions = " ".join(_texts(at.caption))
    assert "16 px (checkpoint metadata of digits16.safetensors)" in captions, captions
    assert at.session_state["teacher"]["dataset"] == "digits"
    assert float(_metric(at, "Test accuracy").rstrip("%")) > 50.0

    at.number_input(key="teacher_size").set_value(12).run()  # the user's own value wins
    assert not at.exception, at.exception
    assert "12 px (given)" in " ".join(_texts(at.caption))


def test_an_uploaded_sidecar_fills_the_form_and_is_kept_beside_the_teacher(page, home, tmp_path,
                                                                          monkeypatch):
    from kdci_core.teachers import builtin_teacher, builtin_teacher_path
    from kdci_core.teachers.input_spec import read_sidecar

    builtin_teacher()
    _copy_as_pt(builtin_teacher_path(), tmp_path)
    sidecar = tmp_path / "mine.pt.json"
    sidecar.write_text(json.dumps({"arch": "lenet5", "dataset": "digits", "num_classes": 10,
                                   "mean": [0.5], "std": [0.25]}))
    files = uploading(monkeypatch, {"Teacher checkpoint": tmp_path / "mine.pt",
                                    "Sidecar JSON (optional)": sidecar})
    at = page
    at.toggle(key="teacher_sidecar_on").set_value(True).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.selectbox(key="teacher_arch").value == "lenet5"
    assert "sidecar mine.pt.json" in " ".join(_texts(at.info))
    stored = at.session_state["teacher"]["path"]
    assert read_sidecar(stored)["mean"] == (0.5,)  # beside the stored file: runs read it too
    assert "mean [0.5] (sidecar mine.pt.json)" in " ".join(_texts(at.caption))

    sidecar.write_text(json.dumps({"image_size": "64"}))
    files["Sidecar JSON (optional)"] = sidecar
    at.run()
    errors = _texts(at.error)
    assert errors and "sidecar mine.pt.json: key 'image_size': expected an integer 8..1024, found '64'" \
        in errors[0], errors


def _copy_as_pt(safetensors_path, folder):
    """The built-in teacher's weights as a user's plain ``torch.save(state_dict)`` .pt file."""
    from safetensors.torch import load_file

    out = folder / "mine.pt"
    torch.save(load_file(str(safetensors_path)), out)
    return out


def test_the_near_chance_rule():
    from app.teacher_form import CHANCE_MARGIN, near_chance

    assert CHANCE_MARGIN == 5.0
    assert near_chance(14.9, 10) and not near_chance(15.0, 10)
    assert near_chance(54.9, 2) and not near_chance(60.0, 2)
    assert near_chance(5.9, 100) and not near_chance(6.0, 100)
