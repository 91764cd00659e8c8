"""DistillConfig: every option of a distillation run, validated before any work starts.

The stored config plus its seed reproduces a run on the same device. Method hyperparameters
live in ``method_params`` (overrides of the method's own documented defaults).
"""

from __future__ import annotations

import copy

from dataclasses import asdict, dataclass, field, fields

from ..common.errors import InputError, check_range
from ..data.augment import AUGMENTATIONS
from ..kdci import ABLATIONS as ABLATION_CHOICES
from ..kdci import ATTENTION_INPUTS
from ..kdci import FUSIONS as FUSION_CHOICES
from ..methods import METHODS, check_teacher_serves
from ..models import check_arch
from ..teachers.onnx_teacher import ONNX_ARCH, ONNX_CAPABILITIES, is_onnx_path
from .corrections import CORRECTIONS
from .feasibility import check_dependent
from .params import typed_params
from .presets import TABLE1_STUDENT, preset_defaults


#: the fields checked alone by their range: (low, high, integer). ``resolve`` reads it, and the
#: command line's cached check of a detached run (``cli/admit.py``) reads the same table
RANGES = {"k": (1, 100_000, True), "attn_init_gain": (0.0, 1000.0, False), "pca_dim": (1, 4096, True),
          "epochs": (1, 100_000, True), "steps_per_epoch": (1, 1_000_000, True),
          "batch_size": (2, 65_536, True), "lr": (1e-8, 10.0, False), "weight_decay": (0.0, 1.0, False),
          "kdci_weight_decay": (0.0, 1.0, False), "tau": (0.05, 100.0, False), "attn_dim": (1, 4096, True),
          "seed": (0, 2**31 - 1, True), "log_every": (0, 1_000_000, True)}


def flag(name: str) -> str:
    """A field's command-line flag, the name its errors use: ``steps_per_epoch`` -> ``--steps-per-epoch``."""
    return f"--{name.replace('_', '-')}"


#: what a config stored before presets (release 0.1) meant by the fields it did not have
LEGACY = {"weight_decay": 5e-4, "augment": "none"}
#: what a config stored before step-level metrics meant (its run logged per epoch only)
BEFORE_STEP_METRICS = {"log_every": 0}


@dataclass
class DistillConfig:
    teacher: str = "builtin"
    teacher_arch: str | None = None
    student: str | None = None            # None: the preset's (quick: lenet5_half; paper: Table 1's)
    dataset: str = "digits"
    data_root: str | None = None
    #: the teacher's input (teachers.input_spec); None: resolved from the teacher (its sidecar,
    #: metadata, ONNX graph or timm config), else the dataset's own
    image_size: int | None = None
    in_channels: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    method: str = "deepinv"
    kdci: bool = True
    preset: str = "quick"                 # fills every field below left at None (presets.py)
    k: int | str | None = None           # None: the method's default (paper 4.3); "auto": the K curve's
    ablation: str = "none"
    dictionary_source: str | None = None  # None: the teacher
    dictionary_source_arch: str | None = None
    wild_data: str | None = None          # sampling methods; None: sklearn's sample photographs
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    lr: float | None = None               # the student's SGD learning rate (cosine schedule)
    weight_decay: float | None = None     # the student's; None: the method's reference value
    kdci_weight_decay: float | None = None  # KDCI's attention (same optimiser); None: the student's
    augment: str | None = None            # student-side augmentation; None: the dataset's own
    tau: float | None = None              # None: the method's default KD temperature
    attn_dim: int = 256
    attn_input: str = "raw"               # what the attention reads: raw logits (paper), /tau, layernorm
    attn_init_gain: float = 1.0           # scales the attention's default initialisation
    fusion: str = "add"
    correction: str = "none"              # data-level shift correction: none, balanced, reweight
    pca_dim: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True                      # bfloat16 autocast on CUDA only
    compile: bool = False                 # torch.compile of the student step's forwards (opt-in)
    log_every: int = 10                   # loss metrics every N student steps (0: per epoch only)
    method_params: dict = field(default_factory=dict)

    def resolve(self, *, resources: bool = True) -> "DistillConfig":
        """A new, complete config: every field checked, then the settings that depend on each
        other (K, memory), the ones left unset filled from the preset; the caller's object is left
        as it was (idempotent: resolving a resolved config gives an equal one). An InputError
        names the first problem. ``resources=False`` skips the memory estimate against this
        machine's free memory: a worker starting a run that was accepted when it was created
        (other runs may hold memory now; the check is for the person launching, not a reason to
        fail a queued run)."""
        resolved = copy.deepcopy(self)
        resolved._check_and_fill(resources)
        return resolved

    def _check_and_fill(self, resources: bool) -> None:
        """:meth:`resolve`'s work, on the copy it owns."""
        method = METHODS.get(self.method)  # unknown method -> InputError listing the six
        self.apply_preset(method)
        check_arch(self.student, "--student")  # a zoo name, tv:NAME or timm:NAME
        if is_onnx_path(self.teacher):  # a black box: its graph says what it is, it gives logits only
            if self.teacher_arch not in (None, "", ONNX_ARCH):
                raise InputError(f"--teacher-arch: an ONNX teacher's graph is its architecture: "
                                 f"expected none, found {self.teacher_arch!r}")
            check_teacher_serves(method, ONNX_CAPABILITIES)
        elif self.teacher != "builtin" and not self.teacher_arch:
            raise InputError("--teacher-arch: required with a teacher file (only --teacher builtin "
                             "and an .onnx file need none)")
        elif self.teacher != "builtin":
            check_arch(self.teacher_arch, "--teacher-arch")  # close matches, before any work
        if self.teacher == "builtin" and self.dataset != "digits":
            raise InputError(f"--teacher builtin: the built-in teacher is trained on digits, found "
                             f"--dataset {self.dataset}; give --teacher FILE --teacher-arch A")
        if self.ablation not in ABLATION_CHOICES:
            raise InputError(f"--ablation: expected one of {', '.join(ABLATION_CHOICES)}, found {self.ablation!r}")
        if self.fusion not in FUSION_CHOICES:
            raise InputError(f"--fusion: expected one of {', '.join(FUSION_CHOICES)}, found {self.fusion!r}")
        if self.ablation != "none" and not self.kdci:
            raise InputError(f"--ablation {self.ablation}: ablations change KDCI, so they need --kdci on")
        if bool(self.dictionary_source) != bool(self.dictionary_source_arch) \
                and not is_onnx_path(self.dictionary_source):
            raise InputError("--dictionary-source and --dictionary-source-arch go together: give both or neither")
        if self.k is not None and self.k != "auto":
            self._ranged("k")
        self.check_input_fields()
        if self.attn_input not in ATTENTION_INPUTS:
            raise InputError(f"--attn-input: expected one of {', '.join(ATTENTION_INPUTS)}, found {self.attn_input!r}")
        self._ranged("attn_init_gain")
        if self.correction not in CORRECTIONS:
            raise InputError(f"--correction: expected one of {', '.join(CORRECTIONS)}, found {self.correction!r}")
        if self.pca_dim is not None:
            self._ranged("pca_dim")
        for name in ("epochs", "steps_per_epoch", "batch_size", "lr", "weight_decay", "kdci_weight_decay"):
            self._ranged(name)
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            raise InputError(f"--augment: expected one of {', '.join(AUGMENTATIONS)}, found {self.augment!r}")
        if self.tau is not None:
            self._ranged("tau")
        for name in ("attn_dim", "seed", "log_every"):
            self._ranged(name)
        # each parameter as its declared type (params.py), then unknown keys, ranges, choices
        self.method_params = typed_params(method, self.method_params)
        check_dependent(self, method, resources=resources)  # K vs samples; steps vs free memory

    def _ranged(self, name: str) -> None:
        """Check field ``name`` against :data:`RANGES` (an integer field is stored as an int)."""
        low, high, integer = RANGES[name]
        setattr(self, name, check_range(flag(name), getattr(self, name), low=low, high=high,
                                        integer=integer))

    def check_input_fields(self) -> None:
        """``--image-size``, ``--in-channels``, ``--mean``, ``--std``: each alone, then with the
        teacher's own values (its sidecar, metadata...: a bad sidecar is refused here, before a
        run exists)."""
        from ..data.common import MAX_SIZE, MIN_SIZE, check_stats
        from ..teachers.input_spec import spec_of

        if self.image_size is not None:
            self.image_size = check_range("--image-size", self.image_size, low=MIN_SIZE,
                                          high=MAX_SIZE, integer=True)
        if self.in_channels is not None:
            if isinstance(self.in_channels, bool) or self.in_channels not in (1, 3):
                raise InputError(f"--in-channels: expected 1 or 3, found {self.in_channels!r}")
            self.in_channels = int(self.in_channels)
        for name in ("mean", "std"):
            values = check_stats(f"--{name}", getattr(self, name), name)
            setattr(self, name, list(values) if values is not None else None)
        spec_of(self)

    def apply_preset(self, method) -> None:
        """Fill the fields left at None from ``self.preset`` for ``method`` (a METHODS class);
        the preset's method parameters go under the ones given explicitly."""
        values = preset_defaults(self.preset, method, self.teacher_arch)
        if self.student is None and values["student"] is None:
            raise InputError(f"--student: the paper preset knows the Table 1 student of teachers "
                             f"{', '.join(sorted(TABLE1_STUDENT))}, not of {self.teacher_arch!r}; give --student")
        for name in ("student", "epochs", "steps_per_epoch", "batch_size", "lr", "weight_decay"):
            if getattr(self, name) is None:
                setattr(self, name, values[name])
        if self.kdci_weight_decay is None:
            self.kdci_weight_decay = self.weight_decay
        if isinstance(self.method_params, dict):
            self.method_params = {**values["method_params"], **self.method_params}
            if self.correction == "balanced" and "balanced" in method.defaults:
                self.method_params.setdefault("balanced", True)  # a balanced selection too

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DistillConfig":
        """A stored config; one written before presets existed keeps the values it ran with."""
        if "preset" not in d:
            d = {**LEGACY, **d}
        if "log_every" not in d:
            d = {**BEFORE_STEP_METRICS, **d}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"run config: unknown field(s) {', '.join(unknown)}; expected some of "
                             f"{', '.join(sorted(known))}")
        return cls(**d)


#: DistillConfig fields given as ``--<field-with-dashes> VALUE`` on ``kdci distill``
_VALUE_FLAGS = ("teacher", "teacher_arch", "student", "dataset", "data_root", "method", "preset", "k",
                "ablation", "dictionary_source", "dictionary_source_arch", "wild_data", "epochs",
                "steps_per_epoch", "batch_size", "lr", "weight_decay", "kdci_weight_decay", "augment",
                "tau", "attn_dim", "attn_input", "attn_init_gain", "fusion", "correction", "pca_dim",
                "seed", "device", "log_every", "image_size", "in_channels")


def command_line(config: dict) -> list[str]:
    """The ``python -m kdci_core distill`` arguments that make ``config`` again (a stored run's:
    every value explicit, so a later change of a preset's defaults does not change the run).
    With the run's resolved ``input_spec`` beside the config's fields (``{**config,
    "input_spec": result["input_spec"]}``), what came from the teacher is stated too."""
    import json

    from ..teachers.input_spec import teacher_values

    cfg = DistillConfig.from_dict({k: v for k, v in config.items() if k in _FIELD_NAMES}).to_dict()
    for name, value in teacher_values(config.get("input_spec")).items():
        cfg[name] = value if cfg[name] is None else cfg[name]
    argv = ["python", "-m", "kdci_core", "distill"]
    for name in _VALUE_FLAGS:
        if cfg[name] is not None:
            argv += [flag(name), str(cfg[name])]
    for name in ("mean", "std"):
        if cfg[name] is not None:
            argv += [f"--{name}", *(repr(float(v)) for v in cfg[name])]
    argv += ["--kdci", "on" if cfg["kdci"] else "off"]
    if not cfg["amp"]:
        argv.append("--no-amp")
    if cfg["compile"]:
        argv.append("--compile")
    for key, value in sorted(cfg["method_params"].items()):
        argv += ["--param", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return argv


_FIELD_NAMES = frozenset(f.name for f in fields(DistillConfig))
