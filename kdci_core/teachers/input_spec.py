"""The input a teacher expects (size, channels, normalisation), resolved value by value.

A teacher only works on inputs like those it was trained on: a timm model trained at 224 px with
ImageNet's statistics misreads 32 px images normalised with CIFAR's. So a run's data, its
generators and synthesizers and its wild pools follow the teacher's input spec, each of the four
values taken from the first of these that has it (``PRECEDENCE``):

1. the user's explicit fields (``--image-size``, ``DistillConfig.image_size``, a page's field);
2. a sidecar JSON beside the teacher file (``teacher.safetensors.json``: ``image_size``,
   ``in_channels``, ``mean``, ``std``, optionally ``num_classes``, ``arch``, ``dataset``),
   then the metadata our own checkpoints carry (``teacher train`` writes the same keys);
3. an ONNX teacher's graph (its input's C, H, W);
4. timm's ``pretrained_cfg`` of a ``timm:NAME`` architecture (``models.input_defaults``): its
   mean and std, and its size only for a fixed-size model (its channels never: the config
   describes ImageNet weights, the checkpoint and the data say the channels);
5. the dataset's own (its native size and channels, its statistics): today's behaviour, so the
   zoo's teachers keep exactly their defaults.

``InputSpec.source`` says where each value came from; it is shown to the user and recorded in a
run's result (``input_spec``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

from ..common.errors import InputError
from ..data import LabeledDataset, load_dataset
from ..data.common import MAX_SIZE, MIN_SIZE, NATIVE_CHANNELS, check_stats, per_channel
from ..data.walk import contained

FIELDS = ("image_size", "in_channels", "mean", "std")
PRECEDENCE = ("given", "sidecar", "checkpoint metadata", "ONNX graph", "timm pretrained_cfg",
              "dataset")
#: the optional keys of a sidecar beside the teacher's
SIDECAR_EXTRA = ("num_classes", "arch", "dataset")
#: a sidecar is a few lines; anything larger is not one
MAX_SIDECAR_BYTES = 64 * 1024
GIVEN = "given"


@dataclass
class InputSpec:
    """A teacher's input: square ``image_size`` px, ``in_channels`` (1 or 3), per-channel
    ``mean``/``std`` of the normalisation. ``None``: the dataset's own (until :meth:`completed`).
    ``source``: field -> where its value came from."""

    image_size: int | None = None
    in_channels: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: dict = field(default_factory=dict)

    def load_kwargs(self) -> dict:
        """The overrides ``load_dataset`` takes."""
        return {name: getattr(self, name) for name in FIELDS}

    def completed(self, info) -> "InputSpec":
        """Every value, those left to the dataset read from its ``DatasetInfo`` as loaded."""
        values = {name: getattr(info, name) for name in FIELDS}
        source = {name: self.source.get(name) or f"dataset {info.name}" for name in FIELDS}
        return InputSpec(**values, source=source)

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "in_channels": self.in_channels,
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None,
                "source": dict(self.source)}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        """A recorded spec (a run's ``input_spec``), its values checked again."""
        values = parse_fields({k: d.get(k) for k in FIELDS if d.get(k) is not None}, "input_spec")
        return cls(**values, source=dict(d.get("source") or {}))

    def describe(self) -> str:
        """One line for people: each value and where it came from."""
        def one(name, text):
            return f"{text} ({self.source.get(name) or 'dataset'})"
        parts = [one("image_size", f"{self.image_size or 'native'} px"),
                 one("in_channels", f"{self.in_channels or 'native'} channel(s)"),
                 one("mean", f"mean {_fmt(self.mean)}"), one("std", f"std {_fmt(self.std)}")]
        return ", ".join(parts)


def _fmt(values) -> str:
    return "the dataset's" if values is None else "[" + ", ".join(f"{v:g}" for v in values) + "]"


# --- reading the values of each source -----------------------------------------------------------
def parse_fields(values: dict, where: str) -> dict:
    """The spec fields (and a sidecar's extras) of ``values``, each of its exact type and range;
    a wrong one is an InputError naming ``where`` and the key (the user's own fields: the key)."""
    def name(key: str) -> str:
        return key if where == GIVEN else f"{where}: key {key!r}"

    def integer(key: str, low: int, high: int) -> int:
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise InputError(f"{name(key)}: expected an integer {low}..{high}, found {v!r}")
        return v

    out = {}
    if values.get("image_size") is not None:
        out["image_size"] = integer("image_size", MIN_SIZE, MAX_SIZE)
    if values.get("in_channels") is not None:
        if values["in_channels"] not in (1, 3) or isinstance(values["in_channels"], bool):
            raise InputError(f"{name('in_channels')}: expected 1 or 3, found {values['in_channels']!r}")
        out["in_channels"] = int(values["in_channels"])
    for key in ("mean", "std"):
        if values.get(key) is not None:
            out[key] = check_stats(name(key), values[key], key)
            if "in_channels" in out:
                out[key] = per_channel(name(key), out[key], out["in_channels"])
    if values.get("num_classes") is not None:
        out["num_classes"] = integer("num_classes", 2, 1_000_000)
    for key in ("arch", "dataset"):
        v = values.get(key)
        if v is not None:
            if not isinstance(v, str) or not v.strip() or len(v) > 200:
                raise InputError(f"{name(key)}: expected a name (text), found {v!r}")
            out[key] = v.strip()
    return out


def sidecar_path(teacher) -> Path:
    """Where a teacher's sidecar lies: its file name + ``.json``."""
    return Path(f"{teacher}.json")


def read_sidecar(teacher) -> dict | None:
    """The sidecar beside ``teacher`` (None when there is none), bounded and strictly parsed;
    keys it does not know (an export's sidecar has more) are ignored with a warning."""
    path = sidecar_path(teacher)
    if not path.is_file():
        return None
    where = f"sidecar {path}"
    contained(path, path.parent, where)  # a link out of the teacher's folder is not read
    size = path.stat().st_size
    if size > MAX_SIDECAR_BYTES:
        raise InputError(f"{where}: expected at most {MAX_SIDECAR_BYTES // 1024} KiB of JSON, "
                         f"found {size:,} bytes")
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{where}: expected a JSON object, found no JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object, found {type(data).__name__}")
    known = FIELDS + SIDECAR_EXTRA
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown and not _export_sidecar(data):
        warnings.warn(f"{where}: ignored key(s) {', '.join(unknown)}; known: {', '.join(known)}",
                      stacklevel=2)
    return parse_fields({k: data[k] for k in known if k in data}, where)


def write_sidecar(teacher, values: dict) -> Path:
    """Write the sidecar of ``teacher`` (the keys ``read_sidecar`` knows; others are dropped),
    replaced in one step: how a ``.pt``/``.pth`` file, which has no metadata we read, keeps its
    input spec."""
    from ..common.atomic_files import write_text

    path = sidecar_path(teacher)
    keep = {k: values[k] for k in FIELDS + SIDECAR_EXTRA if values.get(k) is not None}
    parse_fields(keep, f"sidecar {path}")  # what is written reads back
    text = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in keep.items()}, indent=2)
    write_text(path, text + "\n")
    return path


def _export_sidecar(data: dict) -> bool:
    """An exported student's sidecar (``runs.export``): its other keys are expected."""
    return "sha256" in data and "format" in data


def checkpoint_metadata(teacher) -> dict:
    """The spec our own ``.safetensors`` checkpoints carry in their header (read alone, after the
    header was checked); values are JSON text (``models.weights.save_checkpoint``)."""
    path = Path(teacher)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    from ..models.checkpoint_files import safetensors_metadata

    meta = safetensors_metadata(path)
    where = f"checkpoint {path.name} metadata"
    values = {}
    for key in FIELDS:
        if key in meta:
            try:
                values[key] = json.loads(meta[key])
            except ValueError:
                raise InputError(f"{where}: key {key!r}: expected JSON, found {meta[key][:40]!r}") from None
    return parse_fields(values, where)


#: what the ONNX reader is given for a graph's symbolic H and W when nothing above it set the
#: size: a non-positive size back means "any size" (the dataset's own then)
ANY_SIZE = -1


def onnx_values(teacher, image_size=None) -> dict:
    """(C, H, W) of an ONNX teacher's input, where the ONNX reader exists (another module);
    ``image_size``: the size resolved above it, which a graph of symbolic H x W takes."""
    path = Path(teacher)
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return {}
    try:
        from .onnx_teacher import onnx_input_shape  # noqa: F401  (is it there?)
    except ImportError:
        return {}
    st = path.stat()  # a config is validated often (a page's every rerun): read a graph once
    c, h, w = _onnx_shape(str(path), st.st_mtime_ns, st.st_size, image_size or ANY_SIZE)
    where = f"ONNX graph of {Path(teacher).name}"
    values = {"in_channels": c}
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        if h != w:
            raise InputError(f"{where}: expected a square input, found {h} x {w}")
        values["image_size"] = h
    return parse_fields(values, where)


@lru_cache(maxsize=32)
def _onnx_shape(path: str, mtime_ns: int, size: int, image_size: int) -> tuple:
    """(C, H, W) of the graph at ``path`` as it is now (its time and size in the key)."""
    from .onnx_teacher import onnx_input_shape

    return tuple(onnx_input_shape(path, image_size=image_size)[:3])


def timm_defaults(arch) -> dict | None:
    """timm's ``pretrained_cfg`` input of a ``timm:NAME`` architecture (None: not timm, or the
    models' ``input_defaults`` is not there)."""
    if not arch:
        return None
    try:
        from ..models import input_defaults
    except ImportError:
        return None
    try:
        return input_defaults(arch)
    except InputError:  # an unknown name: loading the teacher names it, with close matches
        return None


def timm_values(arch) -> dict:
    """The spec values of timm's config for ``arch``: its normalisation, and its input size only
    for a fixed-size model (a ViT: built for that size). A timm config describes the ImageNet
    weights, not the user's own training: its channel count is never taken (the checkpoint and
    the data say it), nor the size of a model that takes any size."""
    cfg = timm_defaults(arch)
    if not cfg:
        return {}
    where = f"timm pretrained_cfg of {arch}"
    _c, h, w = (tuple(cfg.get("input_size") or ()) + (None, None, None))[:3]
    values = {"mean": _seq(cfg.get("mean")), "std": _seq(cfg.get("std"))}
    if cfg.get("fixed_input_size") and isinstance(h, int) and h == w:
        values["image_size"] = h
    return parse_fields(values, where)


def _seq(v):
    return list(v) if isinstance(v, (tuple, list)) else v


# --- resolving --------------------------------------------------------------------------------
def _candidates(given: dict, teacher, teacher_arch) -> list[tuple[str, dict]]:
    """(source label, values) in precedence order; the teacher's files are read only for a file."""
    out = [(GIVEN, given)]
    if teacher and str(teacher) != "builtin":
        sidecar = read_sidecar(teacher)
        if sidecar:
            out.append((f"sidecar {sidecar_path(teacher).name}", sidecar))
        out.append((f"checkpoint metadata of {Path(teacher).name}", checkpoint_metadata(teacher)))
        above = next((v["image_size"] for _, v in out if v.get("image_size")), None)
        out.append((f"ONNX graph of {Path(teacher).name}", onnx_values(teacher, above)))
    if teacher != "builtin":
        out.append((f"timm pretrained_cfg of {teacher_arch}", timm_values(teacher_arch)))
    return [(label, {k: v for k, v in values.items() if k in FIELDS and v is not None})
            for label, values in out]


def resolve_input_spec(*, image_size=None, in_channels=None, mean=None, std=None, teacher=None,
                       teacher_arch=None, dataset=None) -> InputSpec:
    """The teacher's input spec: each value from the first source that has it (module doc);
    values left to the dataset stay None. ``image_size`` .. ``std``: the user's explicit fields;
    ``teacher``: its file (or ``"builtin"``), ``teacher_arch`` its architecture name;
    ``dataset``: its name, whose stored channel count (when known before reading it) tells
    whether a normalisation of another channel count, timm's three values on grey digits, fits."""
    given = {"image_size": image_size, "in_channels": in_channels, "mean": mean, "std": std}
    given = parse_fields({k: v for k, v in given.items() if v is not None}, GIVEN)
    candidates = _candidates(given, teacher, teacher_arch)
    spec = InputSpec()
    for name in ("image_size", "in_channels"):
        label, value = next(((lb, v[name]) for lb, v in candidates if name in v), (None, None))
        setattr(spec, name, value)
        if label:
            spec.source[name] = label
    if spec.in_channels is None:  # a normalisation of 3 values describes a 3-channel input
        label = next((lb for lb, v in candidates if not lb.startswith("timm")
                      and len(v.get("mean") or v.get("std") or ()) == 3), None)
        if label:
            spec.in_channels, spec.source["in_channels"] = 3, f"{label} (3 mean/std values)"
    channels = spec.in_channels or NATIVE_CHANNELS.get(dataset)
    for name in ("mean", "std"):
        for label, values in candidates:
            value = values.get(name)
            if value is None:
                continue
            if label.startswith("timm") and channels is None:
                continue  # timm's normalisation is for its channel count: unknown here
            if channels is not None and len(value) not in (1, channels):
                if label == GIVEN:
                    per_channel(name, value, channels)  # the user's own: an error
                continue  # a source that describes another channel count: the next one
            setattr(spec, name, per_channel(name, value, channels or len(value)))
            spec.source[name] = label
            break
    return spec


def spec_of(cfg) -> InputSpec:
    """The spec of a run's settings: anything with DistillConfig's fields (a config, a page's
    form); fields it lacks count as not given (a config stored before they existed)."""
    get = lambda name: getattr(cfg, name, None)  # noqa: E731
    return resolve_input_spec(image_size=get("image_size"), in_channels=get("in_channels"),
                              mean=get("mean"), std=get("std"), teacher=get("teacher"),
                              teacher_arch=get("teacher_arch"), dataset=get("dataset"))


def load_at_spec(name: str, root, spec: InputSpec) -> tuple[LabeledDataset, InputSpec]:
    """Dataset ``name`` at ``spec``, and the spec completed with the dataset's own values."""
    data = load_dataset(name, root, **spec.load_kwargs())
    return data, spec.completed(data.info)


def teacher_values(recorded: dict | None) -> dict:
    """The values of a recorded spec (a run's ``input_spec``) that did not come from the dataset:
    what a command line must state to reproduce the run without the teacher's sidecar."""
    recorded = recorded or {}
    source = recorded.get("source") or {}
    return {name: recorded[name] for name in FIELDS
            if recorded.get(name) is not None and not str(source.get(name, "dataset")).startswith("dataset")}


def run_dataset(config: dict, result: dict | None = None) -> LabeledDataset:
    """A stored run's dataset as the run saw it: at the spec its result recorded (``input_spec``),
    else resolved again from its config (a run of an earlier release: the dataset's own)."""
    recorded = (result or {}).get("input_spec")
    spec = InputSpec.from_dict(recorded) if recorded else spec_of(SimpleNamespace(**config))
    return load_dataset(config["dataset"], config.get("data_root"), **spec.load_kwargs())
