"""torchvision and timm architectures (``tv:NAME``, ``timm:NAME``) under the zoo's contract: the
features are the input of the final Linear (checked by an independent hook), the logits the
library's own forward, the state-dict keys the library's own; unknown names list close matches;
nothing touches the network; a tv: and a timm: student distil, export to ONNX, and match."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from kdci_core.errors import InputError
from kdci_core.models import (arch_choices, build_model, check_arch, classifier_key, first_conv_key,
                              input_defaults, model_names)
from tests.models.offline import no_network  # noqa: F401  (fixture)

#: cheap ones of each library and kind: residual, mobile, compound-scaled, dense, ConvNeXt, a ViT
ADAPTED = ["tv:resnet18", "tv:mobilenet_v3_small", "tv:efficientnet_b0", "tv:densenet121",
           "timm:resnet10t", "timm:mobilenetv3_small_050", "timm:efficientnet_b0",
           "timm:convnext_atto", "timm:vit_tiny_patch16_224"]
SIZE = 32

torch.set_num_threads(2)


def _library_model(name: str, in_channels: int) -> nn.Module:
    """The same architecture built by the library itself, without this project's code."""
    source, bare = name.split(":", 1)
    if source == "tv":
        model = torchvision.models.get_model(bare, weights=None, num_classes=10)
        if in_channels != 3:  # torchvision takes no channel count: the same surgery by hand
            key = first_conv_key(name).rsplit(".", 1)[0]
            old = model.get_submodule(key)
            model.set_submodule(key, nn.Conv2d(in_channels, old.out_channels, old.kernel_size,
                                               old.stride, old.padding, bias=old.bias is not None))
        return model
    import timm

    extra = {"img_size": SIZE} if "vit" in bare else {}
    return timm.create_model(bare, pretrained=False, num_classes=10, in_chans=in_channels, **extra)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", ADAPTED)
def test_features_are_the_final_linears_input_and_keys_the_librarys(name, in_channels, no_network):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=in_channels, image_size=SIZE).eval()
    assert (model.num_classes, model.in_channels) == (10, in_channels)
    head = model.get_submodule(classifier_key(name))
    assert isinstance(head, nn.Linear) and head.out_features == 10
    assert model.feature_dim == head.in_features
    assert model.get_parameter(first_conv_key(name)).shape[1] == in_channels
    seen = []
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    x = torch.randn(2, in_channels, SIZE, SIZE)
    with torch.no_grad():
        plain = model(x)
        logits, features = model(x, return_features=True)
    hook.remove()
    assert features.shape == (2, model.feature_dim) and plain.shape == (2, 10)
    torch.testing.assert_close(features, seen[-1])  # what the final Linear really received
    torch.testing.assert_close(logits, plain)
    assert not head._forward_pre_hooks  # the features' hook lives only during that call
    # the keys are the library's: its own model loads the adapted one's state dict as it is
    bare = _library_model(name, in_channels).eval()
    assert list(model.state_dict()) == list(bare.state_dict())
    bare.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(bare(x), plain)


@pytest.mark.parametrize("name", ["tv:mobilenet_v3_small", "timm:resnet10t"])
def test_training_mode_gradients_reach_the_first_convolution(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=1, image_size=SIZE).train()
    logits, features = model(torch.randn(4, 1, SIZE, SIZE), return_features=True)
    (nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])) + features.pow(2).mean()).backward()
    grad = model.get_parameter(first_conv_key(name)).grad
    assert grad is not None and grad.abs().sum() > 0
    clone = copy.deepcopy(model)  # the adapted class survives a copy (a best-student snapshot)
    assert type(clone) is type(model) and clone.feature_dim == model.feature_dim


def test_keys_and_defaults_by_name():
    assert (classifier_key("tv:resnet18"), first_conv_key("tv:resnet18")) == ("fc", "conv1.weight")
    assert classifier_key("tv:efficientnet_b0") == "classifier.1"
    assert (classifier_key("timm:resnet10t"), first_conv_key("timm:resnet10t")) == ("fc", "conv1.0.weight")
    assert classifier_key("resnet18") == "linear"  # the zoo's, unchanged
    vit = input_defaults("timm:vit_tiny_patch16_224")
    assert vit["fixed_input_size"] is True and vit["input_size"] == (3, 224, 224) and len(vit["mean"]) == 3
    assert input_defaults("timm:resnet10t")["fixed_input_size"] is False
    assert input_defaults("tv:resnet18") is None and input_defaults("lenet5") is None


def test_choices_list_every_source_and_the_zoo_stays_bare():
    choices = arch_choices()
    assert choices["zoo"] == model_names() and "resnet18" in model_names()
    assert "tv:resnet18" in choices["tv"] and "timm:resnet10t" in choices["timm"]
    assert all(n.startswith("tv:") for n in choices["tv"]) and choices["timm"] == sorted(choices["timm"])
    assert check_arch("timm:resnet18.a1_in1k") == "timm:resnet18.a1_in1k"  # a pretrained tag names a config


@pytest.mark.parametrize("name, near", [("tv:resnet19", "tv:resnet18"),
                                        ("timm:mobilenetv3_smal_050", "timm:mobilenetv3_small_050"),
                                        ("resnet19", "resnet18")])
def test_unknown_names_list_close_matches(name, near):
    with pytest.raises(InputError, match=r"--student: unknown architecture .*close matches: .*") as err:
        check_arch(name, "--student")
    assert near in str(err.value).split("close matches: ")[1].split(";")[0]
    with pytest.raises(InputError, match="unknown architecture"):
        build_model(name, num_classes=10)


def test_a_run_config_checks_both_names_before_any_work(tmp_path):
    from kdci_core.distill import DistillConfig

    with pytest.raises(InputError, match=r"--student: unknown architecture 'timm:resnet10'; close "
                                         r"matches: timm:resnet10t"):
        DistillConfig(student="timm:resnet10").resolve()
    with pytest.raises(InputError, match=r"--teacher-arch: unknown architecture 'tv:resnet19'; "
                                         r"close matches: tv:resnet18"):
        DistillConfig(teacher=str(tmp_path / "t.safetensors"), teacher_arch="tv:resnet19",
                      student="lenet5_half").resolve()


@pytest.mark.parametrize("name, needle", [
    ("tv:squeezenet1_0", "final nn.Linear"),               # a convolution head
    ("timm:deit_tiny_distilled_patch16_224", "final nn.Linear"),  # two heads averaged
    ("hub:resnet18", r"unknown architecture 'hub:resnet18'.*tv:NAME"),  # tv: or timm: only
    ("timm:hf-hub:timm/resnet18.a1_in1k", "unknown architecture"),  # never a download
])
def test_models_without_the_contract_are_refused_by_name(name, needle, no_network):
    with pytest.raises(InputError, match=needle):
        build_model(name, num_classes=10)


def test_an_input_too_small_is_refused_with_the_size(no_network):
    with pytest.raises(InputError, match=r"cannot take 1 x 8 x 8 images"):
        build_model("timm:convnext_atto", num_classes=10, in_channels=1, image_size=8)
    assert build_model("timm:convnext_atto", num_classes=10, in_channels=1, image_size=32)


@pytest.mark.parametrize("student, method", [("tv:resnet18", "deepinv"), ("timm:resnet10t", "dfnd")])
def test_tv_and_timm_students_distil_and_export_to_onnx(builtin, tmp_path, student, method, no_network):
    """digits is 8 px: both students take it. The name is recorded as given; the exported graph
    gives the student's logits."""
    import onnxruntime

    from kdci_core.data import load_dataset
    from kdci_core.runs import RunStore, run_inline
    from kdci_core.runs.export import export_student, load_sidecar
    from kdci_core.teachers import load_teacher
    from tests.helpers import tiny_config

    store = RunStore(tmp_path / "store")
    params = {"g_steps": 2, "synth_every": 2, "synth_batch": 16} if method == "deepinv" else \
        {"pool_size": 300, "n_select": 100}
    cfg = tiny_config(student=student, method=method, epochs=1, steps_per_epoch=2, batch_size=16,
                      k=4, method_params=params, device="cpu")
    result = run_inline(cfg, store=store).to_json()
    assert result["student_arch"] == student and store.get(result["run_id"]).config()["student"] == student
    path, _ = export_student(store, result["run_id"], "onnx", tmp_path / "student.onnx")
    assert load_sidecar(path)["architecture"] == student
    trained = load_teacher(store.get(result["run_id"]).path("student.safetensors"), student).model
    images = load_dataset("digits").test.images[:20]
    session = onnxruntime.InferenceSession(path.read_bytes())
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), trained(images), atol=1e-4, rtol=1e-4)
