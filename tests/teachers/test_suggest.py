"""Checkpoints of torchvision/timm models: a tv:resnet18 state dict in every common wrapper loads
as it is; a mismatch gives the precise message and the architectures its layers do match;
``suggest_archs`` finds them; ``teacher inspect`` without ``--arch`` uses the one match; a
trained tv: teacher goes through ``teacher train`` and ``inspect``. Nothing touches the network."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from kdci_core.cli import main
from kdci_core.errors import InputError
from kdci_core.teachers import load_teacher
from kdci_core.teachers.suggest import candidates, suggest_archs
from tests.models.offline import no_network  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def tv_resnet18():
    """A plain torchvision resnet18 for 10 classes, as a user's own script makes it."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture(scope="module")
def timm_resnet10t():
    import timm

    torch.manual_seed(0)
    return timm.create_model("resnet10t", pretrained=False, num_classes=10).eval()


def _save(kind: str, state: dict, folder):
    if kind == "safetensors":
        save_file(state, str(folder / "t.safetensors"))
        return folder / "t.safetensors"
    if kind == "safetensors-module":  # DataParallel's prefix, in a safetensors file
        save_file({f"module.{k}": v for k, v in state.items()}, str(folder / "dp.safetensors"))
        return folder / "dp.safetensors"
    wrapped = {"state_dict": {"state_dict": state, "epoch": 3},
               "model": {"model": state, "optimizer": {"lr": 0.1}},
               "module": {f"module.{k}": v for k, v in state.items()},
               "compiled": {f"_orig_mod.{k}": v for k, v in state.items()}}[kind]
    torch.save(wrapped, folder / f"{kind}.pth")
    return folder / f"{kind}.pth"


@pytest.mark.parametrize("kind", ["safetensors", "safetensors-module", "state_dict", "model",
                                  "module", "compiled"])
def test_a_torchvision_state_dict_loads_in_every_wrapper(tmp_path, tv_resnet18, kind, no_network):
    path = _save(kind, tv_resnet18.state_dict(), tmp_path)
    bundle = load_teacher(path, "tv:resnet18", num_classes=10, in_channels=3)
    assert (bundle.arch, bundle.num_classes, bundle.in_channels) == ("tv:resnet18", 10, 3)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x), tv_resnet18(x))


def test_mismatches_are_precise_and_name_what_the_layers_match(tmp_path, tv_resnet18, no_network):
    path = _save("safetensors", tv_resnet18.state_dict(), tmp_path)
    with pytest.raises(InputError, match=r"expected 7 classes, the checkpoint's final layer has 10"):
        load_teacher(path, "tv:resnet18", num_classes=7)
    with pytest.raises(InputError, match=r"data has 1 channel.*expects 3"):
        load_teacher(path, "tv:resnet18", in_channels=1)
    # the zoo's resnet18 is the CIFAR variant: another head, so no class count where it looks
    with pytest.raises(InputError, match=r"not a resnet18 checkpoint; its layers match 'tv:resnet18'"):
        load_teacher(path, "resnet18")
    with pytest.raises(InputError, match=r"expected a tv:resnet34 checkpoint, found different layers: "
                                         r"\d+ missing .* its layers match 'tv:resnet18'"):
        load_teacher(path, "tv:resnet34")
    with pytest.raises(InputError,
                       match=r"expected a timm:resnet10t checkpoint.*its layers match 'tv:resnet18'"):
        load_teacher(path, "timm:resnet10t")


def test_suggestions_find_the_architectures_of_a_state_dict(tv_resnet18, timm_resnet10t, no_network):
    # timm's resnet18 has torchvision's keys and shapes (and computes the same function): both
    assert suggest_archs(tv_resnet18.state_dict()) == ["tv:resnet18", "timm:resnet18"]
    assert suggest_archs(timm_resnet10t.state_dict()) == ["timm:resnet10t"]
    one_channel = torchvision.models.mobilenet_v3_small(weights=None, num_classes=5).state_dict()
    one_channel["features.0.0.weight"] = one_channel["features.0.0.weight"][:, :1]
    assert suggest_archs(one_channel) == ["tv:mobilenet_v3_small"]  # any class and channel count
    assert suggest_archs({"layer.weight": torch.zeros(3, 4)}) == []
    assert len(candidates()) <= 80  # a bounded search, not all of timm


def test_inspect_without_arch_uses_the_single_match(tmp_path, timm_resnet10t, tv_resnet18, capsys,
                                                    no_network):
    path = _save("safetensors", timm_resnet10t.state_dict(), tmp_path)
    out = tmp_path / "inspect.json"
    assert main(["teacher", "inspect", str(path), "--device", "cpu", "--json", str(out)]) == 0
    said = capsys.readouterr().out
    assert "no --arch given" in said and "'timm:resnet10t'" in said
    report = json.loads(out.read_text())
    assert report["arch"] == "timm:resnet10t" and report["num_classes"] == 10
    two = _save("state_dict", tv_resnet18.state_dict(), tmp_path)
    assert main(["teacher", "inspect", str(two), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--arch: required" in err and "'tv:resnet18', 'timm:resnet18'" in err and "Traceback" not in err
    torch.save({"layer.weight": torch.zeros(3, 4)}, tmp_path / "custom.pt")
    assert main(["teacher", "inspect", str(tmp_path / "custom.pt"), "--device", "cpu"]) == 2
    assert "match none of the" in capsys.readouterr().err
    assert main(["teacher", "inspect", str(path), "--arch", "timm:resnet10", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--arch: unknown architecture 'timm:resnet10'; close matches: timm:resnet10t" in err


def test_a_torchvision_teacher_trains_and_inspects_by_its_prefixed_name(tmp_path, capsys, no_network):
    out, js = tmp_path / "t.safetensors", tmp_path / "train.json"
    assert main(["teacher", "train", "--dataset", "digits", "--arch", "tv:resnet18", "--epochs", "1",
                 "--out", str(out), "--json", str(js), "--quiet", "--device", "cpu"]) == 0
    summary = json.loads(js.read_text())
    assert summary["arch"] == "tv:resnet18" and summary["in_channels"] == 1
    ins = tmp_path / "inspect.json"
    assert main(["teacher", "inspect", str(out), "--arch", "tv:resnet18", "--dataset", "digits",
                 "--device", "cpu", "--json", str(ins)]) == 0
    report = json.loads(ins.read_text())
    assert report["arch"] == "tv:resnet18" and abs(report["test_accuracy"] - summary["test_accuracy"]) < 1e-6
