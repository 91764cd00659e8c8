"""torchvision and timm classifiers (``tv:NAME``, ``timm:NAME``) under the zoo's contract.

Every classifier here must answer ``forward(x, return_features=True)`` with the logits and the
penultimate vector that feeds the final ``nn.Linear``, and carry ``num_classes``,
``in_channels``, ``feature_dim``, ``classifier_key`` and ``first_conv_key`` (docs/
ARCHITECTURE.md). A wrapper module would add a prefix to every state-dict key, so a user's
torchvision/timm state dict would no longer load as it is, nor would a trained student's load in
plain torchvision/timm. Instead the adapter is mixed into the model's own class (the instance's
class becomes a subclass with the adapter ahead in the MRO, as the zoo's MobileNetV2 does):
parameters, buffers and keys stay the library's.

- timm: features through ``forward_features`` then ``forward_head(pre_logits=True)``, logits
  through ``get_classifier()``; ``in_chans`` and, for fixed-size models, ``img_size`` go to
  ``timm.create_model``.
- torchvision: features are the input of the final Linear (or of the Dropout right before it, as
  timm and the zoo return the pre-dropout vector; the same in eval), caught by a forward
  pre-hook that exists only during a call that asks for features, so a plain forward, an
  export or ``torch.compile`` sees the library's own forward; ``in_channels`` != 3 replaces the
  first convolution by one of the same settings.

Where the head and the first convolution are is found once per name by running the model on
PyTorch's ``meta`` device (shapes only, no memory): the Linear whose output *is* the model's
output, the convolution the image enters. A model whose output does not come straight from a
final Linear (``tv:squeezenet1_0``: a convolution head) is refused by name. Weights are never
downloaded: torchvision builders get ``weights=None``, timm ``pretrained=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from ..common.errors import InputError
from .sources import TIMM, TV, split_arch, timm_module

#: extra builder arguments some torchvision classifiers need to return plain logits
TV_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True},
             "inception_v3": {"aux_logits": False, "init_weights": True}}
#: attributes the adapter adds (besides ``num_classes``, which timm keeps with the same meaning);
#: a library class that uses one of these names itself is refused rather than overwritten
ADDED = ("in_channels", "feature_dim", "classifier_key", "first_conv_key")


@dataclass(frozen=True)
class Layout:
    """Where an architecture's parts are, by module name (the same for every class count,
    channel count and input size)."""

    classifier: str          # the final nn.Linear (its state-dict prefix)
    features_at: str         # the module whose input is the penultimate vector
    first_conv: str | None   # the convolution the image enters (None: no convolution)

    @property
    def first_conv_key(self) -> str | None:
        return f"{self.first_conv}.weight" if self.first_conv else None


class External:
    """The mixin: the zoo's ``forward`` on top of the library's. ``super(External, self)``
    is the library's own class, the next in the MRO."""

    def forward(self, x: torch.Tensor, return_features: bool = False):
        if not return_features:
            return super(External, self).forward(x)
        return self._with_features(x)

    def _with_features(self, x):
        raise NotImplementedError


class TorchvisionClassifier(External):
    """A torchvision classifier; features caught at the input of ``_kdci_features_at``."""

    def _with_features(self, x):
        caught = []
        hook = self.get_submodule(self._kdci_features_at).register_forward_pre_hook(
            lambda _module, args: caught.append(args[0]))
        try:
            logits = super(External, self).forward(x)
        finally:
            hook.remove()
        return logits, caught[-1]


class TimmClassifier(External):
    """A timm classifier; features from ``forward_head(pre_logits=True)``."""

    def _with_features(self, x):
        features = self.forward_head(self.forward_features(x), pre_logits=True)
        return self.get_classifier()(features), features


@lru_cache(maxsize=None)
def _adapted_class(mixin: type, cls: type) -> type:
    """One subclass per library class (cached: the same model class every time)."""
    return type(cls.__name__, (mixin, cls), {"__module__": __name__,
                                             "__qualname__": f"{mixin.__name__}[{cls.__name__}]"})


def _construct(arch: str, *, num_classes: int, in_channels: int, image_size: int | None):
    """The bare torchvision/timm model (no adapter), on the current default device; the
    library's own exceptions pass through."""
    source, bare = split_arch(arch)
    if source == TV:
        import torchvision

        kwargs = dict(TV_KWARGS.get(bare, {}))
        if image_size is not None and bare.startswith("vit_"):
            kwargs["image_size"] = image_size  # a ViT's position embedding is per size
        elif image_size is not None and bare == "maxvit_t":
            kwargs["input_size"] = (image_size, image_size)
        return torchvision.models.get_model(bare, weights=None, num_classes=num_classes, **kwargs)
    kwargs = {"img_size": image_size} if image_size is not None and fixed_input_size(bare) else {}
    return timm_module().create_model(bare, pretrained=False, num_classes=num_classes,
                                      in_chans=in_channels, **kwargs)


def _library_model(arch: str, *, num_classes: int, in_channels: int, image_size: int | None):
    """:func:`_construct` on the current device, or on the CPU then moved to it when the
    constructor computes with tensor values (torchvision's RegNets cannot be built on meta)."""
    settings = dict(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    meta = torch.empty(0).is_meta
    try:
        return _construct(arch, **settings)
    except Exception as exc:  # noqa: BLE001 - a library's refusal of these settings
        error = exc
    if meta:
        try:
            with torch.device("cpu"):
                return _construct(arch, **settings).to("meta")
        except Exception as exc:  # noqa: BLE001
            error = exc
    text = str(error).splitlines()[0][:200] if str(error) else ""
    raise InputError(f"architecture {arch!r}: the library cannot build it for {num_classes} "
                     f"classes and {in_channels} input channel(s) ({type(error).__name__}: {text})")


@lru_cache(maxsize=None)
def library_keys(arch: str) -> frozenset:
    """The state-dict keys of ``tv:``/``timm:`` ``arch`` (the same for every class count and
    channel count), from the library's model on meta, without running it: the cheap first test
    of a suggestion search."""
    with torch.device("meta"):
        return frozenset(_library_model(arch, num_classes=10, in_channels=3,
                                        image_size=None).state_dict())


def fixed_input_size(timm_name: str) -> bool:
    """Whether a timm model is built for one input size (ViTs: the position embedding)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    return bool(cfg and cfg.fixed_input_size)


def _probe_size(arch: str) -> int:
    """An input size the architecture takes by default (timm: its pretrained_cfg's)."""
    source, bare = split_arch(arch)
    if source == TIMM:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(bare)
        if cfg is not None:
            return int(cfg.input_size[-1])
    return 224


@lru_cache(maxsize=None)
def layout(arch: str) -> Layout:
    """Find the final Linear, the features' module and the first convolution of ``arch`` by one
    forward on the meta device; refuse an architecture without a final Linear."""
    with torch.device("meta"):
        model = _library_model(arch, num_classes=10, in_channels=3, image_size=None).eval()
        x = torch.empty(2, 3, _probe_size(arch), _probe_size(arch))
        names = {id(m): n for n, m in model.named_modules()}
        calls = []  # (module name, kind, input, output) in call order

        def record(module, args, output):
            if args and isinstance(args[0], torch.Tensor):
                calls.append((names.get(id(module)), type(module), args[0], output))
        hooks = [m.register_forward_hook(record) for m in model.modules()
                 if isinstance(m, (nn.Linear, nn.Dropout, nn.Conv2d))]
        try:
            with torch.no_grad():
                out = model(x)
        except Exception as exc:  # noqa: BLE001 - a model that cannot run its own default input
            raise InputError(f"architecture {arch!r}: cannot run it to find its final layer "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        finally:
            for h in hooks:
                h.remove()
    head = next((c for c in calls if issubclass(c[1], nn.Linear) and c[3] is out), None)
    if head is None or head[2].dim() != 2:
        raise InputError(f"architecture {arch!r}: its logits do not come from a final nn.Linear "
                         "on a feature vector (a convolution head, or two heads averaged), so it has "
                         "no penultimate vector for distillation; choose another architecture")
    dropout = next((c for c in calls if issubclass(c[1], nn.Dropout) and c[3] is head[2]), None)
    first = next((c for c in calls if issubclass(c[1], nn.Conv2d) and c[2] is x), None)
    first_conv = first[0] if first else next((n for n, m in model.named_modules()
                                              if isinstance(m, nn.Conv2d)), None)
    if split_arch(arch)[0] == TIMM and model.get_classifier() is not model.get_submodule(head[0]):
        raise InputError(f"architecture {arch!r}: timm's get_classifier() is not the Linear that "
                         "gives its logits; choose another architecture")
    for name in ADDED:
        if name in model.__dict__ or hasattr(type(model), name) or name in model._modules:
            raise InputError(f"architecture {arch!r}: its class uses the name {name!r} itself, "
                             "which the adapter needs; choose another architecture")
    return Layout(classifier=head[0], features_at=(dropout or head)[0], first_conv=first_conv)


def build_external(arch: str, *, num_classes: int, in_channels: int = 3,
                   image_size: int | None = None) -> nn.Module:
    """Build ``tv:NAME`` / ``timm:NAME`` for ``num_classes`` and ``in_channels``, adapted in place
    (its state-dict keys are the library's own). ``image_size``: given, the model is built for it
    where the library needs a size (ViTs) and refused if it cannot take that input."""
    if image_size is not None:
        check_input(arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    return _build(arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size)


def _build(arch: str, *, num_classes: int, in_channels: int, image_size: int | None) -> nn.Module:
    source, _ = split_arch(arch)
    where = layout(arch)
    model = _library_model(arch, num_classes=num_classes, in_channels=in_channels,
                           image_size=image_size)
    if source == TV and in_channels != 3:
        _replace_first_conv(model, arch, where, in_channels)
    head = model.get_submodule(where.classifier)
    model.__class__ = _adapted_class(TorchvisionClassifier if source == TV else TimmClassifier,
                                     type(model))
    model._kdci_features_at = where.features_at
    model.num_classes, model.in_channels = int(num_classes), int(in_channels)
    model.feature_dim = int(head.in_features)
    model.classifier_key, model.first_conv_key = where.classifier, where.first_conv_key
    return model


def _replace_first_conv(model: nn.Module, arch: str, where: Layout, in_channels: int) -> None:
    """torchvision builders take no channel count: the image's convolution is replaced by one of
    the same settings with ``in_channels`` inputs (initialised as torchvision's convolutions)."""
    if where.first_conv is None:
        raise InputError(f"architecture {arch!r}: no convolution takes the image, so it cannot be "
                         f"built for {in_channels} input channel(s)")
    old = model.get_submodule(where.first_conv)
    if old.groups != 1:
        raise InputError(f"architecture {arch!r}: its first convolution is grouped, so it cannot "
                         f"be built for {in_channels} input channel(s)")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, stride=old.stride,
                    padding=old.padding, dilation=old.dilation, bias=old.bias is not None,
                    padding_mode=old.padding_mode, device=old.weight.device, dtype=old.weight.dtype)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    model.set_submodule(where.first_conv, new)


@lru_cache(maxsize=256)
def check_input(arch: str, *, num_classes: int, in_channels: int, image_size: int) -> None:
    """Refuse an architecture that cannot take ``in_channels x image_size x image_size`` images
    (a network that downsamples below 1 px), by one forward on the meta device."""
    with torch.device("meta"):
        model = _build(arch, num_classes=num_classes, in_channels=in_channels,
                       image_size=image_size).eval()
        try:
            with torch.no_grad():
                out = model(torch.empty(2, in_channels, image_size, image_size))
        except Exception as exc:  # noqa: BLE001 - the library's words for a too small input
            raise InputError(
                f"architecture {arch!r}: cannot take {in_channels} x {image_size} x {image_size} "
                f"images ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''});"
                " choose a larger image size or another architecture") from None
    if tuple(out.shape) != (2, num_classes):
        raise InputError(f"architecture {arch!r}: gives {tuple(out.shape)} for 2 images of "
                         f"{image_size} px, expected (2, {num_classes})")
