"""Model zoo contract: shapes for every architecture/input size/channel count, checkpoint keys,
BatchNorm presence, gradients, input validation and the DCGAN generator."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from kdci_core.common.registry import Registry
from kdci_core.errors import InputError
from kdci_core.models import (GENERATORS, MODELS, build_generator, build_model, classifier_key,
                              first_conv_key, model_names)

#: the architectures ACCEPTANCE section 2 promises; the registry must hold exactly these
DOCUMENTED = ["lenet5", "lenet5_half", "resnet18", "resnet34", "vgg11_bn", "wrn_16_1", "wrn_16_2",
              "wrn_40_1", "wrn_40_2", "mobilenet_v2"]
ARCHS = model_names()  # every test below runs over the registry, as timm's over list_models()
SIZES = [(8, 8), (28, 28), (32, 32)]
EXTRA_SIZES = [(64, 64), (28, 32), (8, 13)]  # larger and non-square

torch.set_num_threads(2)


@functools.lru_cache(maxsize=None)
def _model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """Built once per combination: every size below runs on the *same* model, which is what
    proves that parameter shapes do not depend on the input size."""
    torch.manual_seed(0)
    return build_model(name, num_classes=num_classes, in_channels=in_channels).eval()


def _shapes(model: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_registry_lists_every_architecture():
    assert isinstance(MODELS, Registry) and MODELS.kind == "architecture"
    assert model_names() == sorted(DOCUMENTED)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("num_classes", [10, 100])
def test_logits_and_features_every_size(name, in_channels, num_classes):
    model = _model(name, num_classes, in_channels)
    assert (model.num_classes, model.in_channels) == (num_classes, in_channels)
    assert isinstance(model.feature_dim, int) and model.feature_dim > 0
    before = _shapes(model)
    head = model.get_submodule(classifier_key(name))
    with torch.no_grad():
        for h, w in SIZES:
            x = torch.randn(2, in_channels, h, w)
            logits = model(x)
            assert logits.shape == (2, num_classes), (h, w)
            out, feats = model(x, return_features=True)
            assert out.shape == (2, num_classes) and feats.shape == (2, model.feature_dim)
            assert torch.isfinite(out).all() and torch.isfinite(feats).all()
            # features really are the input of the final Linear (eval: dropout is identity)
            torch.testing.assert_close(head(feats), out, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(logits, out)
    assert _shapes(model) == before


@pytest.mark.parametrize("name", ARCHS)
def test_larger_and_non_square_inputs(name):
    model = _model(name, 10, 3)
    with torch.no_grad():
        for h, w in EXTRA_SIZES:
            assert model(torch.randn(2, 3, h, w)).shape == (2, 10), (h, w)


@pytest.mark.parametrize("name", ARCHS)
def test_state_dict_independent_of_input_size_and_loadable(name):
    a = _model(name, 10, 1)
    b = build_model(name, num_classes=10, in_channels=1)
    with torch.no_grad():
        b.eval()(torch.randn(2, 1, 28, 28))  # a different input size than any run on `a`
    assert _shapes(a) == _shapes(b)
    b.load_state_dict(a.state_dict())  # strict: same keys, same shapes
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b.eval()(x))


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("in_channels,num_classes", [(1, 10), (3, 100)])
def test_checkpoint_keys(name, in_channels, num_classes):
    model = _model(name, num_classes, in_channels)
    sd = model.state_dict()
    w = sd[classifier_key(name) + ".weight"]
    assert w.shape == (num_classes, model.feature_dim)
    assert sd[classifier_key(name) + ".bias"].shape == (num_classes,)
    assert isinstance(model.get_submodule(classifier_key(name)), nn.Linear)
    conv = sd[first_conv_key(name)]
    assert conv.dim() == 4 and conv.shape[1] == in_channels
    # it is the first conv in module order
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.weight is model.get_parameter(first_conv_key(name))


@pytest.mark.parametrize("name", ARCHS)
def test_has_batchnorm(name):
    model = _model(name, 10, 3)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("size", [8, 32])
def test_backward_reaches_first_conv(name, size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=3).train()
    x = torch.randn(2, 3, size, size)
    logits, feats = model(x, return_features=True)
    loss = nn.functional.cross_entropy(logits, torch.tensor([1, 2])) + feats.pow(2).mean()
    loss.backward()
    grad = model.get_parameter(first_conv_key(name)).grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_unknown_arch_and_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="resnet18"):  # lists the known names
        build_model("resnet1000", num_classes=10)
    with pytest.raises(InputError):
        classifier_key("nope")
    with pytest.raises(InputError):
        first_conv_key("nope")
    with pytest.raises(InputError):
        build_model(["resnet18"], num_classes=10)
    with pytest.raises(InputError, match=r"num_classes.*>= 2.*1"):
        build_model("lenet5", num_classes=1)
    with pytest.raises(InputError, match="num_classes"):
        build_model("lenet5", num_classes=2.5)
    with pytest.raises(InputError, match=r"in_channels.*>= 1.*0"):
        build_model("lenet5", num_classes=10, in_channels=0)
    assert isinstance(build_model("lenet5", num_classes=2, in_channels=1), nn.Module)


@pytest.mark.parametrize("img_size", [8, 28, 32, 30])
@pytest.mark.parametrize("nc", [1, 3])
def test_generator_shapes(img_size, nc):
    torch.manual_seed(0)
    gen = build_generator(nz=32, img_size=img_size, nc=nc, ngf=16).train()
    z = torch.randn(4, 32)
    img = gen(z)
    assert img.shape == (4, nc, img_size, img_size)
    assert torch.isfinite(img).all()
    assert any(isinstance(m, nn.BatchNorm2d) for m in gen.modules())
    img.mean().backward()  # generator methods train it through the images
    assert gen.l1.weight.grad is not None
    with torch.no_grad():
        assert gen.eval()(z).shape == (4, nc, img_size, img_size)


def test_generator_registry_and_defaults():
    assert "dcgan" in GENERATORS
    gen = build_generator(img_size=32, nc=3)
    assert gen.nz == 256 and gen.ngf == 64
    assert gen(torch.randn(2, 256)).shape == (2, 3, 32, 32)
    with pytest.raises(InputError, match="img_size"):
        build_generator(img_size=0, nc=3)
    with pytest.raises(InputError, match="nc"):
        build_generator(img_size=32, nc=0)
    with pytest.raises(InputError):
        build_generator(img_size=32, nc=3, name="stylegan")
