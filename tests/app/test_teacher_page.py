"""Dashboard tests: the app starts on the Teacher page, the built-in teacher is shown with its
accuracy, and uploaded files are validated safely (AppTest cannot drive st.file_uploader, so the
upload step is tested through ``kdci_core.teachers``, or with ``st.file_uploader`` replaced)."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.helpers import MAIN


@pytest.fixture(scope="module")
def app_run(home):
    """The app run once from its entry point (trains the built-in teacher on first use)."""
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.run(timeout=300)
    return at


def _metric(at, label):
    found = [m for m in at.metric if m.label == label]
    assert found, f"no {label!r} metric; metrics: {[m.label for m in at.metric]}"
    return found[0].value


def test_main_shows_teacher_page(app_run):
    assert not app_run.exception, app_run.exception
    assert [t.value for t in app_run.title] == ["Teacher"]
    assert app_run.radio[0].value == "Built-in digits teacher"


def test_builtin_teacher_accuracy(app_run, home):
    at = app_run
    assert not at.exception and not at.error, (at.exception, at.error)
    accuracy = float(_metric(at, "Test accuracy").rstrip("%"))
    assert accuracy > 85.0
    assert _metric(at, "Input channels") == "1" and _metric(at, "Classes") == "10"
    assert any(s.value.startswith("valid ") for s in at.success)
    teacher = at.session_state["teacher"]
    assert teacher["source"] == "builtin" and teacher["dataset"] == "digits"
    assert list((home / "teachers").glob("builtin-*.safetensors"))
    at.run()  # a rerun is served from the cache
    assert not at.exception and _metric(at, "Test accuracy") == f"{accuracy:.2f}%"


def test_upload_mode_without_file(app_run):
    at = app_run
    at.radio[0].set_value("Upload a checkpoint").run()
    assert not at.exception
    assert [s.label for s in at.selectbox][:3] == ["Architecture", "Dataset", "Channels"]
    assert at.info and "Upload a teacher file" in at.info[0].value
    # nothing uploaded: the pages keep the built-in teacher chosen before, never a stale upload
    assert at.session_state["teacher"]["source"] == "builtin"
    at.radio[0].set_value("Built-in digits teacher").run()


def _small_teacher(num_classes=10):
    from kdci_core.models import build_model
    torch.manual_seed(0)
    return build_model("lenet5", num_classes=num_classes, in_channels=1)


def test_upload_valid_checkpoint(home):
    from kdci_core.models.weights import save_checkpoint
    from kdci_core.figures.teacher import confusion_figure, per_class_figure
    from kdci_core.teachers import inspect_checkpoint, save_upload
    src = save_checkpoint(_small_teacher(), home / "src" / "lenet.safetensors")
    path, digest = save_upload("../../evil dir/lenet.safetensors", src.read_bytes())
    assert path == home / "uploads" / digest / "lenet.safetensors" and len(digest) == 64
    other = save_checkpoint(_small_teacher(5), home / "src" / "five.safetensors")
    path2, digest2 = save_upload("lenet.safetensors", other.read_bytes())  # same name, other bytes
    assert digest2 != digest and path2.parent.name == digest2 and path.read_bytes() == src.read_bytes()
    report = inspect_checkpoint(path, "lenet5", 10, "digits")
    assert report.headline == "valid lenet5 checkpoint (safetensors)"
    assert report.num_classes == 10 and report.in_channels == 1 and report.parameters > 0
    assert 0.0 <= report.accuracy <= 100.0 and len(report.per_class) == 10
    assert int(report.confusion.sum()) > 0
    assert list(per_class_figure(report).data[0].x) == [str(c) for c in range(10)]
    assert confusion_figure(report).data[0].type == "heatmap"


class _Pwn:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_upload_malicious_pickle_is_refused(home, tmp_path):
    from kdci_core.errors import InputError
    from kdci_core.teachers import inspect_checkpoint, save_upload
    pwned = tmp_path / "pwned"
    payload = pickle.dumps({"state_dict": _Pwn(pwned)})
    for blob in (payload, _torch_save_bytes(_Pwn(pwned), tmp_path)):
        path, _ = save_upload("model.pt", blob)
        with pytest.raises(InputError) as err:
            inspect_checkpoint(path, "lenet5", 10, "digits")
        assert "model.pt" in str(err.value)
        assert not pwned.exists()


def _torch_save_bytes(obj, tmp_path) -> bytes:
    out = tmp_path / "zip.pt"
    torch.save(obj, out)
    return out.read_bytes()


class _Uploaded:
    """What ``st.file_uploader`` returns for one chosen file (AppTest cannot drive the widget)."""

    def __init__(self, path):
        self.name, self._data = path.name, path.read_bytes()
        self.size, self.file_id = len(self._data), f"test-{path.name}"

    def getvalue(self) -> bytes:
        return self._data


@pytest.mark.parametrize("name", ["teacher.ts", "teacher.pt"])
def test_uploaded_torchscript_is_refused_without_running_it(home, tmp_path, monkeypatch, name):
    """The page's own upload path (``st.file_uploader`` -> stored -> validated): a TorchScript
    archive whose code would overwrite another file is refused by its member names, and the page
    says why and what to upload instead."""
    import streamlit

    from tests.crafted import VICTIM, crafted_torchscript

    evil, victim = crafted_torchscript(tmp_path, name)
    original = streamlit.file_uploader
    monkeypatch.setattr(streamlit, "file_uploader", lambda label, *a, **k: _Uploaded(evil)
                        if label == "Teacher checkpoint" else original(label, *a, **k))
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.run()
    at.radio[0].set_value("Upload a checkpoint").run()
    assert not at.exception, at.exception
    assert victim.read_bytes() == VICTIM, "the uploaded archive's code ran"
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "refused: a TorchScript archive" in errors[0], errors
    assert "torch.save(model.state_dict(), path)" in errors[0] and not at.success
    assert at.session_state["teacher"]["source"] == "builtin"


def test_upload_wrong_class_count(home):
    from kdci_core.errors import InputError
    from kdci_core.models.weights import save_checkpoint
    from kdci_core.teachers import inspect_checkpoint, save_upload
    src = save_checkpoint(_small_teacher(num_classes=5), home / "src" / "five.pt")
    path, _ = save_upload("five.pt", src.read_bytes())
    with pytest.raises(InputError) as err:
        inspect_checkpoint(path, "lenet5", 10, "digits")
    msg = str(err.value)
    assert "10" in msg and "5" in msg and "class" in msg
    with pytest.raises(InputError, match="digits"):  # entered count disagrees with the dataset
        inspect_checkpoint(path, "lenet5", 5, "digits")


def test_upload_limits_and_names(home):
    from kdci_core.errors import InputError
    from kdci_core.models.weights import MAX_CHECKPOINT_BYTES
    from kdci_core.teachers import check_upload_size, sanitise_name
    with pytest.raises(InputError, match="MiB"):
        check_upload_size("huge.pt", MAX_CHECKPOINT_BYTES + 1)
    with pytest.raises(InputError, match="empty"):
        check_upload_size("empty.pt", 0)
    assert sanitise_name("C:\\x\\..\\my model (1).pth") == "my_model__1_.pth"
    assert sanitise_name("../..") == "checkpoint"
    assert sanitise_name(".hidden.ts") == "hidden.ts"


def _chosen_upload(home, name: str) -> str:
    """A trained lenet5 (the built-in teacher's weights: a teacher near chance would wait for the
    user's confirmation) uploaded as ``name`` and remembered as the dashboard's teacher (what an
    earlier session chose); returns its sha256."""
    from app.shared import remember
    from kdci_core.teachers import builtin_teacher, builtin_teacher_path, remember_upload, save_upload

    builtin_teacher()
    path, digest = save_upload(name, builtin_teacher_path().read_bytes())
    record = {"source": "upload", "arch": "lenet5", "path": str(path), "num_classes": 10,
              "dataset": "digits", "data_root": None, "sha256": digest, "name": name}
    remember_upload(digest, record)
    remember("teacher", record)
    return digest


def test_the_chosen_teacher_survives_a_new_session(home):
    """A refresh, a new tab and a server restart all start a new session: the uploaded teacher
    chosen before is still the one every page uses, and a ?teacher= link picks one."""
    from app.shared import remember

    digest = _chosen_upload(home, "persist.safetensors")
    try:
        at = AppTest.from_file(MAIN, default_timeout=300)
        at.run()
        assert not at.exception and at.radio[0].value == "Upload a checkpoint"
        assert any("Current teacher: `persist.safetensors`" in c.value for c in at.caption)
        assert at.session_state["teacher"]["sha256"] == digest
        at.switch_page("../pages/substitution.py").run()
        assert any("`lenet5` from the Teacher page" in c.value for c in at.caption)
        linked = AppTest.from_file(MAIN, default_timeout=300)
        linked.query_params["teacher"] = "builtin"
        linked.run()
        assert linked.radio[0].value == "Built-in digits teacher"
    finally:
        remember("teacher", None)


def test_random_bytes_upload_is_not_a_checkpoint(home):
    """Random bytes named .pt are a corrupt file, not "a file that asks to run code"."""
    import random

    from kdci_core.errors import InputError
    from kdci_core.teachers import inspect_checkpoint, save_upload
    path, _ = save_upload("noise.pt", random.Random(0).randbytes(2048))
    with pytest.raises(InputError, match="not a PyTorch/safetensors checkpoint") as err:
        inspect_checkpoint(path, "lenet5", 10, "digits")
    assert "asks to import" not in str(err.value)


def test_page_errors_name_the_page_fields_not_cli_flags(home):
    """The Teacher page's messages say 'Architecture', 'Data root', never --arch or --data-root."""
    from app.shared import remember

    _chosen_upload(home, "fields.safetensors")
    try:
        at = AppTest.from_file(MAIN, default_timeout=300)
        at.run()
        assert not at.exception and not at.error, (at.exception, at.error)
        arch, dataset = at.selectbox(key="teacher_arch"), at.selectbox(key="teacher_dataset")
        arch.set_value("wrn_16_1").run()  # a lenet5 file read as another architecture
        errors = [e.value for e in at.error]
        assert errors and "its layers match 'lenet5': choose that architecture" in errors[0], errors
        arch.set_value("lenet5")
        dataset.set_value("cifar10").run()  # no data root given, none found
        errors = [e.value for e in at.error]
        assert errors and "'Data root (optional)'" in errors[0], errors
        assert not any("--" in e for e in errors)
    finally:
        remember("teacher", None)


def test_page_message_translates_flags_and_parameter_names():
    from app.shared import page_message

    fields = {"--wild-data": "'Wild data'", "inception_weights": "'Inception weights file'"}
    assert page_message("--device: 'cuda' requested but no CUDA device", fields) == \
        "'Device' (sidebar): 'cuda' requested but no CUDA device"
    assert page_message("needs --wild-data dataset:NAME; --teacher-arch A", fields) == \
        "needs 'Wild data' dataset:NAME; 'Architecture' on the Teacher page A"
    assert page_message("pass its path (inception_weights)", fields) == "pass its path ('Inception weights file')"
    assert page_message("--unknown-flag stays", fields) == "--unknown-flag stays"


def test_an_input_error_is_named_by_its_field_not_by_its_text():
    """The page reads the field at fault from the error (``InputError.field``): a parameter name
    that is also an ordinary word elsewhere in the message is replaced only where it is the field."""
    from app.shared import error_text
    from kdci_core.common.errors import InputError

    fields = {"batch": "'Images per batch'"}
    exc = InputError(field="batch", expected="an integer >= 2 (one batch of images)", found="1")
    assert error_text(exc, fields) == "'Images per batch': expected an integer >= 2 (one batch of images), found 1"
    assert error_text(InputError("--k: expected a value >= 1, found 0 (see --teacher-arch)")) == \
        "--k: expected a value >= 1, found 0 (see 'Architecture' on the Teacher page)"  # not a page field: as it is
    assert error_text(ValueError("--device: no CUDA")) == "'Device' (sidebar): no CUDA"


def test_the_favicon_is_a_local_file_served_by_streamlit(monkeypatch):
    """A ':material/...:' favicon is fetched from fonts.gstatic.com (fails offline); an image
    file is served by Streamlit itself, under /media/."""
    import streamlit
    from PIL import Image
    from streamlit.commands.page_config import _get_favicon_string

    seen = {}
    original = streamlit.set_page_config

    def recording(*args, **kwargs):
        seen.update(kwargs, favicon=_get_favicon_string(kwargs["page_icon"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(streamlit, "set_page_config", recording)
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    icon = seen["page_icon"]
    assert not str(icon).startswith(":") and Image.open(icon).format == "PNG"
    assert "/media/" in seen["favicon"] and "gstatic" not in seen["favicon"]


def test_data_root_only_from_the_allowed_folders(home, tmp_path, monkeypatch):
    """A visitor's 'Data root' outside the operator's folders is refused with them listed, and the
    teacher stays as chosen; one inside is used (resolved)."""
    from app.shared import remember

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("KDCI_ALLOWED_ROOTS", str(allowed))
    _chosen_upload(home, "roots.safetensors")
    try:
        at = AppTest.from_file(MAIN, default_timeout=300)
        at.run()
        assert not at.exception and not at.error, (at.exception, at.error)
        root = next(t for t in at.text_input if t.label == "Data root (optional)")
        root.set_value(f"{allowed}{'/..' * 30}/etc").run()
        errors = [e.value for e in at.error]
        assert errors and errors[0].startswith("'Data root (optional)': expected a path under one of "
                                               "the folders this dashboard allows"), errors
        assert str(allowed.resolve()) in errors[0] and str(home.resolve()) in errors[0]
        assert "which resolves to /etc" in errors[0] and not at.success
        assert at.session_state["teacher"]["data_root"] is None
        root.set_value(f"{allowed}/./").run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert any(s.value.startswith("valid ") for s in at.success)
        assert at.session_state["teacher"]["data_root"] == str(allowed.resolve())
    finally:
        remember("teacher", None)
