"""Black-box ONNX teachers: read safely (standard operator domains only, external data only beside
the model, the memory budget), run by onnxruntime, served to the methods that need only the
teacher's outputs (DFND, plain KD) and refused, with the missing need named, for the others.

The teacher is a small custom module (no zoo model, no BatchNorm), trained on digits for a few
seconds and exported with ``torch.onnx.export`` once per module."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from kdci_core.cli import main
from kdci_core.errors import InputError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from tests.user_models import TinyNet  # noqa: E402


@pytest.fixture(scope="module")
def trained(kdci_home):
    """(module, digits): TinyNet trained full-batch on digits' train split (a second)."""
    from kdci_core.data import load_dataset

    data = load_dataset("digits")
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(30):  # about 97% on the test split
        opt.zero_grad()
        nn.functional.cross_entropy(net(data.train.images), data.train.labels).backward()
        opt.step()
    return net.eval(), data


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """model.onnx (dynamic batch) in its own folder, written by torch.onnx.export."""
    net, _ = trained
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    torch.onnx.export(net, (torch.randn(2, 1, 8, 8),), str(path), input_names=["images"],
                      output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                      verbose=False, external_data=True)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A run store of this test's own, to count the runs a command created."""
    monkeypatch.setenv("KDCI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _runs(home) -> list:
    runs = home / "runs"
    return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.exists() else []


# --- (f) the black box computes what the module computes ---------------------------------------
def test_logits_equal_the_pytorch_module(trained, exported):
    from kdci_core.teachers import load_onnx_teacher
    from kdci_core.teachers.onnx_teacher import MAX_BATCH

    net, data = trained
    bundle = load_onnx_teacher(exported, num_classes=10, in_channels=1, image_size=8)
    assert (bundle.arch, bundle.checkpoint_format, bundle.num_classes, bundle.in_channels) == \
        ("onnx", "onnx", 10, 1)
    assert bundle.sha256 and bundle.parameter_count == sum(p.numel() for p in net.parameters())
    assert list(bundle.model.parameters()) == []
    x = data.test.images[:MAX_BATCH + 37]  # more than one onnxruntime call
    with torch.no_grad():
        expected = net(x)
    got = bundle.model(x.clone().requires_grad_(True))
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert not got.requires_grad  # a black box's outputs carry no gradient
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="'features' is missing"):
        bundle.model(x[:2], return_features=True)
    with pytest.raises(InputError, match=r"expected N x 1 x 8 x 8 images, found \(2, 1, 9, 9\)"):
        bundle.model(torch.zeros(2, 1, 9, 9))


def test_a_fixed_batch_graph_is_fed_in_padded_chunks(trained, exported, tmp_path):
    """A graph exported without a dynamic batch (N = 4 here) still scores any number of images."""
    net, data = trained
    model = onnx.load(str(exported))  # with its external data, saved again inline
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 4
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    from kdci_core.teachers import load_onnx_teacher, onnx_input_shape

    assert onnx_input_shape(fixed) == (1, 8, 8, 10)
    teacher = load_onnx_teacher(fixed).model
    x = data.test.images[:10]
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), net(x), atol=1e-4, rtol=0)


# --- what each method needs, what each teacher serves -------------------------------------------
def test_each_method_declares_its_needs_and_a_black_box_serves_dfnd_and_plain(trained):
    from kdci_core.methods import METHODS, NEEDS, check_teacher_serves, methods_for_teacher
    from kdci_core.teachers import CAPABILITIES, ONNX_CAPABILITIES, teacher_capabilities
    from kdci_core.teachers.capabilities import has_batchnorm_statistics

    assert tuple(NEEDS) == CAPABILITIES
    assert {name: set(METHODS.get(name).teacher_needs) for name in METHODS.names()} == {
        "deepinv": {"logits", "batchnorm", "gradients"}, "fast": {"logits", "batchnorm", "gradients"},
        "cmi": {"logits", "batchnorm", "gradients"}, "dafl": {"logits", "features", "gradients"},
        "mosaickd": {"logits", "gradients"}, "dfnd": {"logits"}, "plain": {"logits"}}
    served = methods_for_teacher(ONNX_CAPABILITIES)
    assert [m for m, why in served.items() if why is None] == ["dfnd", "plain"]
    assert served["dafl"].startswith("needs the teacher's penultimate features and gradients")
    # a torch teacher without BatchNorm: everything but the BN-statistics methods
    net, _ = trained
    assert not has_batchnorm_statistics(net)
    assert teacher_capabilities(net) == {"logits", "features", "gradients"}
    with pytest.raises(InputError, match=r"^--method cmi: needs the teacher's BatchNorm statistics; "
                                         r"this teacher has no BatchNorm layers .*methods it can "
                                         r"serve: dafl, dfnd, mosaickd, plain$"):
        check_teacher_serves("cmi", teacher_capabilities(net))
    from kdci_core.models import build_model

    assert "batchnorm" in teacher_capabilities(build_model("lenet5", num_classes=10, in_channels=1))


def test_the_loop_refuses_a_torch_teacher_without_batchnorm_for_deepinv(trained, monkeypatch):
    """``load_run_teacher`` checks the loaded teacher's capabilities, not only its file name."""
    import kdci_core.distill.loop as loop
    from kdci_core.distill import DistillConfig
    from kdci_core.teachers import TeacherBundle

    net, data = trained
    bundle = TeacherBundle(model=net, arch="tinynet", num_classes=10, in_channels=1, source="x",
                           checkpoint_format="test", parameter_count=0, metadata={})
    monkeypatch.setattr(loop, "load_named_teacher", lambda *a, **k: bundle)
    with pytest.raises(InputError, match="--method deepinv: needs the teacher's BatchNorm statistics; "
                                         "this teacher has no BatchNorm"):
        loop.load_run_teacher(DistillConfig(method="deepinv"), data.info, torch.device("cpu"))
    assert loop.load_run_teacher(DistillConfig(method="dfnd"), data.info, "cpu") is bundle


# --- (a) DFND and plain KD with an ONNX teacher, end to end --------------------------------------
def _distill(args, out) -> dict:
    assert main(["distill", "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "3",
                 "--batch-size", "32", "--quiet", "--json", str(out), *args]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("kdci", ["on", "off"])
def test_dfnd_distils_from_an_onnx_teacher(exported, home, tmp_path, kdci):
    result = _distill(["--teacher", str(exported), "--method", "dfnd", "--kdci", kdci,
                       "--param", "pool_size=400", "--param", "n_select=160"], tmp_path / "r.json")
    assert result["teacher_arch"] == "onnx" and result["config"]["teacher_arch"] is None
    assert result["teacher_accuracy"] > 80  # the graph really scored the test split
    assert 0 <= result["student_accuracy"] <= 100 and result["history"][0]["student_accuracy"] >= 0
    assert (result.get("dictionary") is not None) == (kdci == "on")
    assert len(_runs(home)) == 1


def test_plain_kd_on_an_unlabeled_folder_with_an_onnx_teacher(exported, home, tmp_path):
    from PIL import Image

    folder = tmp_path / "wild"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    result = _distill(["--teacher", str(exported), "--method", "plain", "--kdci", "on",
                       "--wild-data", str(folder), "--k", "8"], tmp_path / "r.json")
    assert result["teacher_arch"] == "onnx" and 0 <= result["student_accuracy"] <= 100
    assert result["config"]["wild_data"] == str(folder)


def test_an_onnx_teacher_is_never_compiled(exported, home):
    from kdci_core.distill import DistillConfig, Distiller

    cfg = DistillConfig(teacher=str(exported), method="dfnd", compile=True, kdci=False, epochs=1,
                        steps_per_epoch=1, batch_size=8, method_params={"pool_size": 50, "n_select": 20})
    d = Distiller(cfg)
    assert d.teacher_forward.compiled is None and d.student_forward.compiled is not None


# --- (b) refused for the methods it cannot serve, before any run exists --------------------------
@pytest.mark.parametrize("method, needs", [
    ("deepinv", "the teacher's BatchNorm statistics and gradients through the teacher"),
    ("dafl", "the teacher's penultimate features and gradients through the teacher"),
    ("mosaickd", "gradients through the teacher")])
@pytest.mark.parametrize("dry_run", [True, False])
def test_methods_that_need_more_than_outputs_are_refused(exported, home, capsys, method, needs, dry_run):
    argv = ["distill", "--teacher", str(exported), "--method", method, "--dataset", "digits",
            "--kdci", "on"] + (["--dry-run"] if dry_run else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"error: --method {method}: needs {needs}; an ONNX teacher is a black box "
                           f"that gives only its outputs; methods it can serve: dfnd, plain")
    assert _runs(home) == []


def test_an_onnx_teacher_needs_no_arch_and_refuses_another(exported, capsys):
    assert main(["distill", "--teacher", str(exported), "--method", "dfnd", "--dataset", "digits",
                 "--kdci", "off", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["teacher"] == str(exported)
    assert main(["distill", "--teacher", str(exported), "--teacher-arch", "lenet5", "--method",
                 "dfnd", "--dataset", "digits", "--kdci", "off", "--dry-run"]) == 2
    assert "--teacher-arch: an ONNX teacher's graph is its architecture" in capsys.readouterr().err


# --- (e) teacher inspect ------------------------------------------------------------------------
def test_teacher_inspect_reports_classes_input_and_accuracy(exported, tmp_path, capsys, trained):
    out = tmp_path / "inspect.json"
    assert main(["teacher", "inspect", str(exported), "--dataset", "digits", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "valid ONNX graph" in text and "10 classes, input 1 x 8 x 8" in text
    assert "methods it can serve: dfnd, plain" in text and "test accuracy on digits:" in text
    report = json.loads(out.read_text())
    assert report["input_shape"] == [1, 8, 8] and report["num_classes"] == 10
    net, data = trained
    with torch.no_grad():
        expected = 100.0 * float((net(data.test.images).argmax(1) == data.test.labels).float().mean())
    assert report["test_accuracy"] == pytest.approx(expected, abs=1e-4)
    assert main(["teacher", "inspect", str(exported), "--num-classes", "7"]) == 2
    assert "class count mismatch: expected 7 classes" in capsys.readouterr().err


def test_inspect_checkpoint_reads_an_onnx_file(exported):
    from kdci_core.teachers import inspect_checkpoint

    report = inspect_checkpoint(exported, None, None, "digits")
    assert report.headline.startswith("valid ONNX graph") and report.input_shape == [1, 8, 8]
    assert report.capabilities == ["logits"] and report.accuracy > 80


# --- (c) custom-op domains ----------------------------------------------------------------------
def _io():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    return x, y


def _pool_nodes(src="x", out="y", domain=""):
    """N x 1 x 8 x 8 -> N x 2 (mean and max over the image): a two-class "classifier"."""
    return [helper.make_node("ReduceMean", [src], ["m"], keepdims=0, axes=[2, 3]),
            helper.make_node("ReduceMax", [src], ["M"], keepdims=0, axes=[2, 3]),
            helper.make_node("Concat", ["m", "M"], [out], axis=1, domain=domain)]


def _save(model, path):
    onnx.save(model, str(path))
    return path


def test_a_custom_op_domain_is_refused_by_name(tmp_path):
    from kdci_core.teachers import load_onnx_teacher

    x, y = _io()
    evil = helper.make_node("Backdoor", ["x"], ["y"], domain="com.evil.ops")
    model = helper.make_model(helper.make_graph([evil], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17),
                                             helper.make_opsetid("com.evil.ops", 1)])
    with pytest.raises(InputError, match=r"expected only the standard ONNX operator domains .* "
                                         r"found custom-op domain 'com.evil.ops'"):
        load_onnx_teacher(_save(model, tmp_path / "evil.onnx"))


def test_a_custom_op_inside_a_subgraph_or_a_function_is_refused(tmp_path):
    from kdci_core.teachers import load_onnx_teacher, onnx_input_shape

    x, y = _io()
    # a model-local function of standard nodes is no custom op: accepted and run
    fn = helper.make_function("local.fn", "Pool2", ["x"], ["y"], _pool_nodes(),
                              [helper.make_opsetid("", 17)])
    call = helper.make_node("Pool2", ["x"], ["y"], domain="local.fn")
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local.fn", 1)]
    ok = helper.make_model(helper.make_graph([call], "g", [x], [y]), opset_imports=opsets, functions=[fn])
    teacher = load_onnx_teacher(_save(ok, tmp_path / "fn.onnx")).model
    images = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(teacher(images), torch.stack([images.mean((1, 2, 3)),
                                                             images.amax((1, 2, 3))], 1))
    # ... but a custom node inside that function is
    bad_fn = helper.make_function("local.fn", "Pool2", ["x"], ["y"], _pool_nodes(domain="com.evil"),
                                  [helper.make_opsetid("", 17)])
    bad = helper.make_model(helper.make_graph([call], "g", [x], [y]), opset_imports=opsets,
                            functions=[bad_fn])
    with pytest.raises(InputError, match="custom-op domain 'com.evil'"):
        onnx_input_shape(_save(bad, tmp_path / "badfn.onnx"))
    # ... and so is one in an If branch
    then = helper.make_graph(_pool_nodes(domain="com.evil"), "then", [], [y])
    other = helper.make_graph(_pool_nodes(), "else", [], [y])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    branchy = helper.make_model(helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        "g", [x], [y], value_info=[cond]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InputError, match="custom-op domain 'com.evil'"):
        onnx_input_shape(_save(branchy, tmp_path / "if.onnx"))


# --- (d) external data must stay beside the model -----------------------------------------------
def _relocate(exported, folder, location: str):
    """A copy of ``exported`` in ``folder`` whose external tensors point at ``location``."""
    model = onnx.load(str(exported), load_external_data=False)
    moved = 0
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value, moved = location, moved + 1
    assert moved, "the export was expected to keep its weights in an external file"
    folder.mkdir(parents=True, exist_ok=True)
    return _save(model, folder / "model.onnx")


def test_external_data_outside_the_models_folder_is_refused(exported, tmp_path):
    from kdci_core.teachers import load_onnx_teacher

    data_file = next(p for p in exported.parent.iterdir() if p.suffix != ".onnx")
    (tmp_path / "x.bin").write_bytes(data_file.read_bytes())  # the right bytes, the wrong place
    path = _relocate(exported, tmp_path / "models", "../x.bin")
    with pytest.raises(InputError, match=r"external data location '\.\./x\.bin': expected a file "
                                         r"inside the model's folder .* resolves to .*x\.bin"):
        load_onnx_teacher(path)
    (tmp_path / "models" / "link.bin").symlink_to(tmp_path / "x.bin")
    path = _relocate(exported, tmp_path / "models", "link.bin")
    with pytest.raises(InputError, match=r"'link\.bin': expected a file inside the model's folder"):
        load_onnx_teacher(path)
    path = _relocate(exported, tmp_path / "models", str(tmp_path / "x.bin"))  # absolute
    with pytest.raises(InputError, match="expected a file inside the model's folder"):
        load_onnx_teacher(path)
    path = _relocate(exported, tmp_path / "models", "missing.bin")
    with pytest.raises(InputError, match="expected an existing file beside the model"):
        load_onnx_teacher(path)
    (tmp_path / "models" / "x.bin").write_bytes(data_file.read_bytes())  # beside it: accepted
    assert load_onnx_teacher(_relocate(exported, tmp_path / "models", "x.bin")).num_classes == 10


def test_external_bytes_count_against_the_memory_budget(exported, tmp_path, monkeypatch):
    from kdci_core.teachers import load_onnx_teacher

    model = onnx.load(str(exported), load_external_data=False)
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(3 << 20)  # 3 MiB (sparse)
    external = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    for i, t in enumerate(external):  # all in big.bin; the first declares all of its 3 MiB
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "big.bin"
            elif entry.key == "length" and i == 0:
                entry.value = str(3 << 20)
            elif entry.key == "offset" and i == 0:
                entry.value = "0"
    path = _save(model, tmp_path / "model.onnx")
    monkeypatch.setenv("KDCI_MAX_INFLATED_MB", "1")
    with pytest.raises(InputError, match=r"external data would take 3 MiB in memory, more than the "
                                         r"1 MiB allowed"):
        load_onnx_teacher(path)


@pytest.mark.parametrize("content, expected", [
    (b"\x00\x01 not a protobuf \xff" * 10, "do not parse|with a graph"),
    (b"", "with a graph")])
def test_a_file_that_is_no_onnx_model_is_refused(tmp_path, content, expected):
    from kdci_core.teachers import load_onnx_teacher

    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        load_onnx_teacher(path)


def test_several_inputs_or_a_symbolic_size_are_refused(tmp_path):
    from kdci_core.teachers import onnx_input_shape

    x, y = _io()
    x2 = helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 1, 8, 8])
    two = helper.make_model(helper.make_graph(_pool_nodes(), "g", [x, x2], [y]),
                            opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InputError, match=r"expected one image input and one logits output, found "
                                         r"2 input\(s\) \(x, x2\)"):
        onnx_input_shape(_save(two, tmp_path / "two.onnx"))
    xs = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "height", "width"])
    sym = _save(helper.make_model(helper.make_graph(_pool_nodes(), "g", [xs], [y]),
                                  opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "sym.onnx")
    with pytest.raises(InputError, match=r"input dimension H: expected a fixed size, found 'height' "
                                         r"\(symbolic\); give the image size"):
        onnx_input_shape(sym)
    assert onnx_input_shape(sym, image_size=8) == (1, 8, 8, 2)


# --- diagnostics: FID needs Inception's features, a black box has none ---------------------------
def test_diagnose_an_onnx_teacher_fid_needs_inception(exported, home, tmp_path, monkeypatch):
    import importlib

    diag = importlib.import_module("kdci_core.diagnostics.diagnose")  # the package names a function so
    fid = importlib.import_module("kdci_core.diagnostics.fid")
    from kdci_core.distill import DistillConfig

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached weights
    cfg = DistillConfig(teacher=str(exported), method="dfnd", kdci=False,
                        method_params={"pool_size": 300, "n_select": 100})

    def never(*a, **k):
        raise AssertionError("the refusal must come before any data are made")

    with monkeypatch.context() as m:
        m.setattr(diag, "collect_substitution_data", never)
        for kind in ("auto", "teacher"):
            with pytest.raises(InputError, match=f"extractor: '{kind}' without Inception weights needs "
                                                 "the teacher's penultimate features; an ONNX teacher"):
                diag.diagnose(cfg, fid=kind)
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"placeholder")  # found, never read: the network is stood in for

    class StandIn(nn.Module):
        def forward(self, x):
            return [torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)[:, :, None, None]]

    monkeypatch.setattr(fid, "build_fid_inception", lambda path: StandIn())
    result = diag.diagnose(cfg, fid="auto", inception_weights=weights, max_reference=50, k=8)
    assert result.fid.extractor_kind == "inception" and np.isfinite(result.fid.value)
    assert result.to_dict()["teacher_arch"] == "onnx" and len(result.data.images) == 100
    assert main(["diagnose", "--teacher", str(exported), "--method", "dfnd", "--dataset", "digits",
                 "--fid", "teacher", "--quiet"]) == 2
    assert os.environ["KDCI_HOME"] == str(home)
