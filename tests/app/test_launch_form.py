"""The Runs page's launch form with a user's own models (issue 20 item 5): a student from the
zoo, torchvision or timm list (or typed, checked), the methods the chosen teacher cannot serve
marked with the reason and refused, and the Teacher page's input values passed to every run."""

from __future__ import annotations

import pytest

from tests.app.byo_support import onnx_teacher, typed_options  # noqa: F401
from tests.helpers import open_page


def _chosen(record: dict | None) -> None:
    """What the Teacher page chose in an earlier session."""
    from app.shared import remember

    remember("teacher", record)
    remember("launch_form", None)


@pytest.fixture
def builtin_page(home):
    _chosen(None)
    return open_page("../pages/runs.py")


def _launch(at):
    return at.button(key="runs_launch")


def test_the_student_field_takes_a_timm_name(builtin_page):
    at = builtin_page
    student = at.selectbox(key="runs_student")
    assert student.value == "lenet5_half"
    assert {"lenet5_half", "tv:mobilenet_v3_small", "timm:mobilenetv3_small_050", "timm:resnet10t"} <= set(student.options)
    student.set_value("timm:mobilenetv3_small_050").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert _launch(at).label == "Launch 6 runs" and not _launch(at).disabled


def test_a_typed_student_name_is_checked_with_close_matches(builtin_page, typed_options):
    at = builtin_page
    at.selectbox(key="runs_student").set_value("timm:mobilenetv3_smal_050").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("'Student': unknown architecture 'timm:mobilenetv3_smal_050'; "
                                           "close matches: timm:mobilenetv3_small_050"), errors
    assert _launch(at).disabled


@pytest.fixture(scope="module")
def onnx_record(home, tmp_path_factory):
    from kdci_core.teachers import save_upload

    made = onnx_teacher(tmp_path_factory.mktemp("onnx"))
    path, digest = save_upload(made.name, made.read_bytes())  # where the Teacher page keeps it
    return {"source": "upload", "arch": "onnx", "path": str(path), "num_classes": 10,
            "dataset": "digits", "data_root": None, "sha256": digest, "name": path.name,
            "capabilities": ["logits"]}


def test_methods_an_onnx_teacher_cannot_serve_are_marked_and_refused(home, onnx_record):
    _chosen(onnx_record)
    at = open_page("../pages/runs.py")
    methods = at.multiselect(key="runs_methods")
    assert methods.value == ["dfnd"]  # deepinv, the usual default, is not served
    options = set(methods.options)
    assert {"dfnd", "plain", "deepinv (not with this teacher)", "dafl (not with this teacher)"} <= options
    assert not at.error and not _launch(at).disabled
    notes = " ".join(c.value for c in at.caption)
    assert "Not with this teacher: " in notes and \
        "deepinv: needs the teacher's BatchNorm statistics and gradients through the teacher" in notes
    methods.set_value(["dfnd", "deepinv"]).run()
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("'Methods' deepinv: needs the teacher's BatchNorm"), errors
    assert "methods it can serve: dfnd, plain" in errors[0] and _launch(at).disabled
    _chosen(None)


def test_a_teacher_without_batchnorm_cannot_serve_the_bn_methods(home, monkeypatch):
    """What the Teacher page measured (here: a network without BatchNorm, stood in for by
    patching the measurement) greys out DeepInv, Fast and CMI on the Runs form."""
    import kdci_core.teachers.inspect as inspect

    monkeypatch.setattr(inspect, "teacher_capabilities", lambda model: frozenset({"logits", "features", "gradients"}))
    _chosen(_upload_record("no_bn.safetensors"))
    at = open_page("../pages/runs.py")
    assert at.session_state["teacher"]["capabilities"] == ["features", "gradients", "logits"]
    marked = {o for o in at.multiselect(key="runs_methods").options if o.endswith("(not with this teacher)")}
    assert marked == {f"{m} (not with this teacher)" for m in ("cmi", "deepinv", "fast")}
    assert at.multiselect(key="runs_methods").value == ["dafl"]
    at.multiselect(key="runs_methods").set_value(["fast"]).run()  # chosen anyway: refused, reason named
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("'Methods' fast: needs the teacher's BatchNorm statistics"), errors
    assert _launch(at).disabled
    _chosen(None)


def _upload_record(name: str, **extra) -> dict:
    """A trained lenet5 (the built-in teacher's weights) uploaded as ``name``, as the Teacher
    page records it."""
    from kdci_core.teachers import builtin_teacher, builtin_teacher_path, save_upload

    builtin_teacher()
    path, digest = save_upload(name, builtin_teacher_path().read_bytes())
    return {"source": "upload", "arch": "lenet5", "path": str(path), "num_classes": 10,
            "dataset": "digits", "data_root": None, "sha256": digest, "name": path.name, **extra}


def test_the_teacher_pages_input_values_reach_every_run(home):
    _chosen(_upload_record("mine.safetensors", image_size=16, mean=[0.5]))
    at = open_page("../pages/runs.py")
    assert not at.error, at.error
    notes = " ".join(c.value for c in at.caption)
    assert "Input of every run: 16 px (given)" in notes and "mean [0.5] (given)" in notes, notes
    _chosen(None)
