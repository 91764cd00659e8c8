"""A teacher's input spec (teachers/input_spec.py): each value from the first source that has it
(the user's fields > a sidecar > the checkpoint's metadata > an ONNX graph > timm's config > the
dataset's own), bad sidecars refused by key, and the data, wild pools and generators at it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from kdci_core.data import load_dataset, load_wild_pool
from kdci_core.errors import InputError
from kdci_core.models import build_generator, build_model
from kdci_core.models.weights import save_checkpoint
from kdci_core.teachers.input_spec import (InputSpec, load_at_spec, read_sidecar,
                                           resolve_input_spec, sidecar_path, teacher_values,
                                           write_sidecar)

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _checkpoint(path, **metadata):
    model = build_model("lenet5", num_classes=10, in_channels=3)
    return save_checkpoint(model, path, metadata=metadata)


def _onnx_graph(path, c=3, size=48, classes=10, width=None):
    """A tiny graph (global average pool -> flatten -> Gemm), built with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((c, classes), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "w"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, size, width or size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_each_value_from_the_first_source_that_has_it(tmp_path):
    """fields > sidecar > checkpoint metadata, value by value; what no source sets stays the
    dataset's (None), and completing at the dataset names it."""
    teacher = _checkpoint(tmp_path / "t.safetensors", image_size=48, in_channels=3,
                          mean=[0.1, 0.2, 0.3], std=[0.4, 0.5, 0.6])
    sidecar_path(teacher).write_text(json.dumps({"image_size": 40, "arch": "lenet5"}))
    spec = resolve_input_spec(std=[0.25], teacher=teacher, teacher_arch="lenet5")
    assert (spec.image_size, spec.in_channels, spec.mean, spec.std) == (40, 3, (0.1, 0.2, 0.3),
                                                                       (0.25, 0.25, 0.25))
    assert spec.source == {"image_size": "sidecar t.safetensors.json",
                           "in_channels": "checkpoint metadata of t.safetensors",
                           "mean": "checkpoint metadata of t.safetensors", "std": "given"}
    given = resolve_input_spec(image_size=16, in_channels=3, mean=[0.5, 0.5, 0.5],
                               teacher=teacher, teacher_arch="lenet5")
    assert (given.image_size, given.mean) == (16, (0.5, 0.5, 0.5))
    assert given.source["image_size"] == given.source["mean"] == "given"


def test_onnx_graph_then_timm_config_then_the_dataset(tmp_path):
    """The graph's size beats timm's; timm's normalisation fills what the graph lacks; a file
    with neither (a zoo or torchvision teacher) leaves everything to the dataset."""
    pytest.importorskip("kdci_core.teachers.onnx_teacher")
    graph = _onnx_graph(tmp_path / "black.onnx", c=3, size=48)
    spec = resolve_input_spec(teacher=graph, teacher_arch="timm:resnet10t")
    assert (spec.image_size, spec.in_channels) == (48, 3)
    assert spec.source["image_size"] == "ONNX graph of black.onnx"
    assert (spec.mean, spec.std) == IMAGENET
    assert spec.source["mean"] == "timm pretrained_cfg of timm:resnet10t"
    wide = _onnx_graph(tmp_path / "wide.onnx", size=48, width=40)
    with pytest.raises(InputError, match="expected a square input, found 48 x 40"):
        resolve_input_spec(teacher=wide)

    plain = _checkpoint(tmp_path / "plain.safetensors")
    # timm's config describes ImageNet weights: its normalisation where the channels fit, its
    # size only for a fixed-size model, its channel count never
    timm_spec = resolve_input_spec(teacher=plain, teacher_arch="timm:resnet10t", dataset="cifar10")
    assert timm_spec.image_size is None and timm_spec.in_channels is None
    assert (timm_spec.mean, timm_spec.std) == IMAGENET
    grey = resolve_input_spec(teacher=plain, teacher_arch="timm:resnet10t", dataset="digits")
    assert grey.mean is None and grey.in_channels is None  # digits' own, not ImageNet's
    unknown = resolve_input_spec(teacher=plain, teacher_arch="timm:resnet10t", dataset="folder")
    assert unknown.mean is None  # a folder's channels are known only once read
    vit = resolve_input_spec(teacher=plain, teacher_arch="timm:vit_tiny_patch16_224", dataset="cifar10")
    assert vit.image_size == 224 and vit.source["image_size"].startswith("timm pretrained_cfg")
    for arch in ("lenet5", "tv:resnet18"):
        assert resolve_input_spec(teacher=plain, teacher_arch=arch).load_kwargs() == \
            {"image_size": None, "in_channels": None, "mean": None, "std": None}
    data, done = load_at_spec("digits", None, resolve_input_spec(teacher=plain, teacher_arch="lenet5"))
    assert (done.image_size, done.in_channels) == (8, 1)  # the zoo's default: today's digits
    assert done.source == {k: "dataset digits" for k in ("image_size", "in_channels", "mean", "std")}
    assert done.mean == data.info.mean == load_dataset("digits").info.mean


def test_a_source_for_another_channel_count_gives_way(tmp_path):
    """Grey input asked for: timm's three-channel normalisation does not apply (the dataset's
    does); the user's own three values for one channel are refused."""
    plain = _checkpoint(tmp_path / "plain.safetensors")
    spec = resolve_input_spec(in_channels=1, teacher=plain, teacher_arch="timm:resnet10t")
    assert spec.in_channels == 1 and spec.mean is None and spec.std is None
    with pytest.raises(InputError, match="mean: expected 1 value"):
        resolve_input_spec(in_channels=1, mean=[0.1, 0.2, 0.3])
    three = resolve_input_spec(mean=[0.1, 0.2, 0.3])  # three values describe three channels
    assert three.in_channels == 3 and "3 mean/std values" in three.source["in_channels"]


@pytest.mark.parametrize("content, key", [
    ({"image_size": "64"}, "image_size"),
    ({"image_size": 4}, "image_size"),
    ({"image_size": True}, "image_size"),
    ({"in_channels": 2}, "in_channels"),
    ({"mean": [0.1, 0.2]}, "mean"),
    ({"mean": "0.5"}, "mean"),
    ({"in_channels": 1, "mean": [0.1, 0.2, 0.3]}, "mean"),
    ({"std": [0.0, 0.2, 0.3]}, "std"),
    ({"std": [float("nan")]}, "std"),
    ({"num_classes": 1.5}, "num_classes"),
    ({"arch": 5}, "arch"),
    ({"dataset": ""}, "dataset"),
])
def test_a_bad_sidecar_is_refused_naming_the_key(tmp_path, content, key):
    teacher = _checkpoint(tmp_path / "t.safetensors")
    sidecar_path(teacher).write_text(json.dumps(content))
    with pytest.raises(InputError) as err:
        resolve_input_spec(teacher=teacher, teacher_arch="lenet5")
    assert f"sidecar {sidecar_path(teacher)}" in str(err.value) and f"'{key}'" in str(err.value)


@pytest.mark.parametrize("text, found", [("{not json", "no JSON"), ("[1, 2]", "found list"),
                                         ("{}" + " " * 70_000, "at most 64 KiB")])
def test_a_sidecar_that_is_no_json_object_is_refused(tmp_path, text, found):
    teacher = _checkpoint(tmp_path / "t.safetensors")
    sidecar_path(teacher).write_text(text)
    with pytest.raises(InputError, match=found):
        read_sidecar(teacher)


def test_a_sidecar_linked_from_outside_is_not_read(tmp_path, monkeypatch):
    """A sidecar that is a symlink out of the teacher's folder (and the allowed folders)."""
    monkeypatch.setenv("KDCI_ALLOWED_ROOTS", str(tmp_path / "allowed"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "spec.json").write_text(json.dumps({"image_size": 64}))
    teacher = _checkpoint(tmp_path / "allowed" / "t.safetensors")
    sidecar_path(teacher).symlink_to(tmp_path / "elsewhere" / "spec.json")
    with pytest.raises(InputError, match="found a symlink to"):
        resolve_input_spec(teacher=teacher, teacher_arch="lenet5")


def test_bad_checkpoint_metadata_is_refused_naming_the_key(tmp_path):
    teacher = _checkpoint(tmp_path / "t.safetensors", image_size="big")
    with pytest.raises(InputError, match="metadata: key 'image_size'"):
        resolve_input_spec(teacher=teacher, teacher_arch="lenet5")


def test_sidecar_written_reads_back_and_unknown_keys_warn(tmp_path):
    teacher = tmp_path / "t.pt"
    write_sidecar(teacher, {"image_size": 32, "in_channels": 3, "mean": (0.5, 0.5, 0.5),
                            "std": [0.2], "arch": "lenet5", "test_accuracy": 99.0})
    assert read_sidecar(teacher) == {"image_size": 32, "in_channels": 3, "mean": (0.5, 0.5, 0.5),
                                     "std": (0.2, 0.2, 0.2), "arch": "lenet5"}
    sidecar_path(teacher).write_text(json.dumps({"image_size": 32, "img_size": 64}))
    with pytest.warns(UserWarning, match="ignored key.*img_size"):
        assert read_sidecar(teacher) == {"image_size": 32}


def test_recorded_spec_round_trips_and_keeps_only_the_teachers_values():
    spec = InputSpec(32, 3, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2),
                     {"image_size": "sidecar t.pt.json", "in_channels": "given",
                      "mean": "dataset digits", "std": "dataset digits"})
    again = InputSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert teacher_values(spec.to_dict()) == {"image_size": 32, "in_channels": 3}


def test_digits_at_a_teachers_spec():
    """Upsampled, three channels, the teacher's normalisation: the pixels are those of a plain
    load at that size (the normalisation changes nothing else)."""
    plain = load_dataset("digits", image_size=32, in_channels=3)
    data = load_dataset("digits", image_size=32, in_channels=3, mean=[0.5], std=[0.25, 0.5, 1.0])
    info = data.info
    assert data.train.images.shape[1:] == (3, 32, 32)
    assert (info.image_size, info.in_channels, info.mean, info.std) == (32, 3, (0.5,) * 3, (0.25, 0.5, 1.0))
    torch.testing.assert_close(info.denormalize(data.test.images),
                               plain.info.denormalize(plain.test.images), atol=1e-5, rtol=0)
    for bad, match in [(dict(mean=[0.1, 0.2]), "mean: expected 1 or 3"), (dict(std=[-1.0]), "std"),
                       (dict(in_channels=1, mean=[0.1, 0.2, 0.3]), "mean: expected 1 value")]:
        with pytest.raises(InputError, match=match):
            load_dataset("digits", **bad)


def _write_images(folder, n=4, size=50, seed=0):
    rng = np.random.default_rng(seed)
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")


@pytest.mark.parametrize("size, channels", [(64, 1), (64, 3), (224, 3)])
def test_image_folder_at_a_teachers_spec(tmp_path, size, channels):
    _write_images(tmp_path / "d")
    data = load_dataset("folder", tmp_path / "d", image_size=size, in_channels=channels,
                        mean=[0.5], std=[0.5])
    assert data.train.images.shape[1:] == (channels, size, size)
    assert data.info.mean == (0.5,) * channels
    x01 = data.info.denormalize(data.train.images)
    assert float(x01.min()) >= 0 and float(x01.max()) <= 1
    torch.testing.assert_close(data.train.images, x01 * 2 - 1, atol=1e-5, rtol=0)


@pytest.mark.parametrize("source", ["default", "dataset:digits", "folder"])
def test_wild_pools_at_a_teachers_spec(tmp_path, source):
    """Every kind of pool comes at the teacher's size and channels, in its normalisation."""
    info = load_dataset("digits", image_size=64, in_channels=3, mean=[0.5, 0.4, 0.3],
                        std=[0.2, 0.3, 0.4]).info
    if source == "folder":
        _write_images(tmp_path / "wild", n=3, size=90)
        source = str(tmp_path / "wild")
    pool = load_wild_pool(source, info, n=6, seed=0)
    assert pool.shape == (6, 3, 64, 64)
    x01 = pool * torch.tensor(info.std).view(1, 3, 1, 1) + torch.tensor(info.mean).view(1, 3, 1, 1)
    assert float(x01.min()) >= -1e-5 and float(x01.max()) <= 1 + 1e-5


@pytest.mark.parametrize("size", [8, 28, 30, 32, 64, 100, 224])
@pytest.mark.parametrize("output", ["sigmoid", "tanh-bn"])
def test_generators_at_any_size(size, output):
    g = build_generator(nz=16, img_size=size, nc=3, ngf=8, output=output, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert g(torch.randn(2, 16)).shape == (2, 3, size, size)
    # up to 64 px the references' network exactly; beyond, the first map stays at most 16 px
    assert (len(g.up_blocks) == 0) == (size <= 64) and g.init_size <= 16
    if size <= 64:
        assert g.l1.out_features == 16 * ((size + 3) // 4) ** 2
