"""Frechet Inception Distance between substitution (synthetic) images and real reference images.

FID says how far the generator's images are from the data the teacher saw, in some feature
space. pytorch-fid's InceptionV3 is the standard space, but its weights are a download and this
engine never touches the network: they are used only when the file is already on disk. Without
it the teacher's penultimate features stand in; those FIDs are comparable only with each other
(same teacher), never with published Inception FIDs, so every result carries its extractor.
"""

from __future__ import annotations

import pickle
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import LinAlgWarning
from torch import nn

from ..common.errors import InputError
from ..common.progress import Progress, report
from ..data.types import DatasetInfo
from ..methods.needs import NEEDS, describe_teacher
from ..models.checkpoint_files import check_torch_file
from ..teachers.capabilities import teacher_capabilities

INCEPTION_DIM = 2048
_PATCH_LOCK = threading.Lock()  # the no-download build swaps a module global for a moment


def _weights_url() -> str:
    from pytorch_fid.inception import FID_WEIGHTS_URL

    return FID_WEIGHTS_URL


def _cached_weights() -> Path:
    """Where pytorch-fid itself would have put the file: <torch hub dir>/checkpoints/<url name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / _weights_url().rsplit("/", 1)[-1]


def inception_weights_path(explicit: str | Path | None = None) -> Path | None:
    """The explicit weights file, else pytorch-fid's file in the torch hub cache, else None."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InputError(f"inception_weights: expected an existing file, found {str(path)!r}")
        return path
    cached = _cached_weights()
    return cached if cached.is_file() else None


def build_fid_inception(weights: str | Path) -> nn.Module:
    """pytorch-fid's InceptionV3 (pool3 block) with weights read from ``weights``, never downloaded.

    ``fid_inception_v3`` fetches its weights through the module-level name
    ``load_state_dict_from_url``; it is replaced for the duration of the build by a loader that
    reads the local file (``weights_only=True``: no pickled code runs)."""
    import pytorch_fid.inception as pfi

    path = Path(weights)

    def load_local(url: str, *args, **kwargs) -> dict:
        try:
            check_torch_file(path)  # no code archive, nothing inflated past the memory budget
        except InputError as exc:
            raise InputError(f"inception_weights: expected pytorch-fid's {_cached_weights().name}, "
                             f"cannot read {str(path)!r}: {exc}") from None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise InputError(f"inception_weights: expected pytorch-fid's {_cached_weights().name}, "
                             f"cannot read {str(path)!r}: {(str(exc) or type(exc).__name__).splitlines()[0][:200]}") from None

    with _PATCH_LOCK:
        original = pfi.load_state_dict_from_url
        pfi.load_state_dict_from_url = load_local
        try:
            net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[INCEPTION_DIM]])
        except RuntimeError as exc:  # strict load_state_dict: keys or shapes differ
            raise InputError(f"inception_weights: {str(path)!r} is not the pytorch-fid Inception "
                             f"checkpoint: {' '.join(str(exc).split(':', 1)[-1].split())[:240]}") from None
        finally:
            pfi.load_state_dict_from_url = original
    return net.eval()


def _check_images(images: torch.Tensor, info: DatasetInfo, field: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        found = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"{field}: expected an N x C x H x W image tensor, found {found}")
    if images.shape[1] != len(info.mean):
        raise InputError(f"{field}: expected {len(info.mean)} channel(s) for dataset {info.name!r}, "
                         f"found {images.shape[1]}")


def to_inception_input(images: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """Normalised images -> [0, 1] RGB, what pytorch-fid's InceptionV3 expects (grey is repeated)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise InputError(f"images: expected 1 (greyscale) or 3 (RGB) channels for the Inception "
                         f"extractor, found shape {tuple(images.shape)}")
    x01 = info.denormalize(images.float())
    return x01.repeat(1, 3, 1, 1) if x01.shape[1] == 1 else x01


class InceptionExtractor:
    """2048-d pool3 features of pytorch-fid's InceptionV3; ``network`` is injectable for tests."""

    kind = "inception"
    dim = INCEPTION_DIM
    name = f"InceptionV3 pool3 (pytorch-fid), {INCEPTION_DIM}-d"
    max_batch = 64  # 299 x 299 activations: bounds memory whatever batch size the caller asks

    def __init__(self, weights: str | Path | None = None, *, network: nn.Module | None = None):
        if weights is None and network is None:
            raise InputError("inception_weights: expected a weights file or a network, found neither")
        self.weights, self._network = weights, network

    @torch.no_grad()
    def features(self, images: torch.Tensor, info: DatasetInfo, *, device: torch.device | str,
                 batch_size: int = 64, progress: Progress = None) -> np.ndarray:
        if self._network is None:
            self._network = build_fid_inception(self.weights)
        net = self._network.to(device).eval()
        step, out = max(1, min(batch_size, self.max_batch)), []
        for i in range(0, len(images), step):
            feats = net(to_inception_input(images[i:i + step], info).to(device))
            feats = feats[0] if isinstance(feats, (list, tuple)) else feats
            out.append(feats.flatten(1).double().cpu())
            report(progress, min(i + step, len(images)), len(images), "FID features")
        return torch.cat(out).numpy() if out else np.empty((0, self.dim))


class TeacherExtractor:
    """The teacher's penultimate features: always available, comparable only for that teacher."""

    kind = "teacher"

    def __init__(self, model: nn.Module, arch: str = "teacher"):
        self.model, self.arch = model, arch
        self.dim: int | None = getattr(model, "feature_dim", None)

    @property
    def name(self) -> str:
        dim = f", {self.dim}-d" if self.dim else ""
        return f"teacher penultimate features ({self.arch}{dim})"

    @torch.no_grad()
    def features(self, images: torch.Tensor, info: DatasetInfo, *, device: torch.device | str,
                 batch_size: int = 256, progress: Progress = None) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()  # BatchNorm running statistics, not batch statistics
        out = []
        try:
            for i in range(0, len(images), max(1, batch_size)):
                _, feats = self.model(images[i:i + batch_size].to(device), return_features=True)
                out.append(feats.flatten(1).double().cpu())
                report(progress, min(i + batch_size, len(images)), len(images), "FID features")
        finally:
            self.model.train(was_training)
        result = torch.cat(out).numpy() if out else np.empty((0, self.dim or 0))
        self.dim = int(result.shape[1]) if out else self.dim
        return result


def _inception_weights_for(kind: str, inception_weights) -> Path | None:
    """The Inception weights ``kind`` will use (None: the teacher's features stand in)."""
    if kind not in ("auto", "inception", "teacher"):
        raise InputError(f"extractor: expected one of auto, inception, teacher, found {kind!r}")
    weights = inception_weights_path(inception_weights) if kind != "teacher" else None
    if kind == "inception" and weights is None:
        raise InputError(f"extractor: 'inception' needs pytorch-fid's weights file, not found at "
                         f"{str(_cached_weights())!r}; download it elsewhere from "
                         f"{_weights_url()} and pass its path (inception_weights) or copy it there")
    return weights


def make_extractor(kind: str = "auto", *, teacher: nn.Module | None = None, teacher_arch: str = "teacher",
                   inception_weights: str | Path | None = None) -> InceptionExtractor | TeacherExtractor:
    """"auto": Inception when its weights are on disk, else the teacher's features."""
    if hasattr(teacher, "model") and hasattr(teacher, "arch"):  # a TeacherBundle
        teacher, teacher_arch = teacher.model, teacher.arch
    weights = _inception_weights_for(kind, inception_weights)
    if weights is not None:
        return InceptionExtractor(weights)
    if teacher is None:
        raise InputError(f"extractor: {kind!r} needs a teacher model (no Inception weights found), found none")
    check_teacher_extractor(kind, teacher_capabilities(teacher))
    return TeacherExtractor(teacher, teacher_arch)


def check_teacher_extractor(kind: str, capabilities) -> None:
    """The teacher stands in for Inception only with its penultimate features: a black box (an
    ONNX teacher) has none, so say which need is missing and the two ways out."""
    if "features" in capabilities:
        return
    raise InputError(f"extractor: {kind!r} without Inception weights needs {NEEDS['features']}; "
                     f"{describe_teacher(capabilities)}; give pytorch-fid's weights file "
                     f"(inception_weights / --inception-weights, or copy it to "
                     f"{str(_cached_weights())!r}) or skip FID (--fid none)")


def extractor_ready(kind: str, capabilities, inception_weights=None) -> None:
    """Before any work: what :func:`make_extractor` would refuse for a teacher of
    ``capabilities`` (Inception weights asked for but absent, a black box's features)."""
    if _inception_weights_for(kind, inception_weights) is None:
        check_teacher_extractor(kind, capabilities)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> tuple[float, str | None]:
    """FID between two feature sets, with a warning when a covariance is necessarily singular."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(f"features: expected two N x D arrays with the same D, found {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise InputError(f"features: expected at least 2 samples per set to estimate a covariance, "
                         f"found {len(a)} and {len(b)}")
    dim = a.shape[1]
    with warnings.catch_warnings():
        # scipy's sqrtm warns on a singular product (dead ReLU features make that common);
        # pytorch-fid then regularises the covariances itself, and our own warning below covers
        # the case where it is structural (N < D).
        warnings.simplefilter("ignore", LinAlgWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        value = calculate_frechet_distance(a.mean(0), np.atleast_2d(np.cov(a, rowvar=False)),
                                           b.mean(0), np.atleast_2d(np.cov(b, rowvar=False)))
    warning = None
    if min(len(a), len(b)) < dim:
        warning = (f"only {len(a)} and {len(b)} samples for {dim}-d features: fewer samples than "
                   f"dimensions makes the covariance singular, so this FID is biased and unstable; "
                   f"compare it only with FIDs from the same sample counts, or use >= {dim} samples")
    return float(value), warning


@dataclass
class FIDResult:
    value: float
    extractor_kind: str
    extractor_name: str
    feature_dim: int
    n_substitution: int
    n_reference: int
    warning: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        value = f"{self.value:.1f}" if abs(self.value) >= 10 else f"{self.value:.3g}"
        unstable = "; unstable: fewer samples than dimensions" if self.warning else ""
        return (f"FID {value} ({self.extractor_name}; {self.n_substitution} vs {self.n_reference} "
                f"samples{unstable})")


def compute_fid(substitution: torch.Tensor, reference: torch.Tensor, *, info: DatasetInfo,
                device: torch.device | str, teacher: nn.Module | None = None, teacher_arch: str = "teacher",
                extractor: str = "auto", inception_weights: str | Path | None = None,
                batch_size: int = 256, progress: Progress = None) -> FIDResult:
    """FID of substitution vs reference images (both normalised with ``info``), one progress bar."""
    _check_images(substitution, info, "substitution")
    _check_images(reference, info, "reference")
    if substitution.shape[1:] != reference.shape[1:]:
        raise InputError(f"substitution: expected images shaped like the reference "
                         f"{tuple(reference.shape[1:])}, found {tuple(substitution.shape[1:])}")
    ext = make_extractor(extractor, teacher=teacher, teacher_arch=teacher_arch,
                         inception_weights=inception_weights)
    total = len(substitution) + len(reference)
    feats = []
    for offset, images in ((0, substitution), (len(substitution), reference)):
        def sub(done: int, _n: int, desc: str, offset: int = offset) -> None:
            report(progress, offset + done, total, desc)

        feats.append(ext.features(images, info, device=device, batch_size=batch_size,
                                  progress=sub if progress is not None else None))
    value, warning = frechet_distance(*feats)
    return FIDResult(value=value, extractor_kind=ext.kind, extractor_name=ext.name,
                     feature_dim=int(feats[0].shape[1]), n_substitution=len(substitution),
                     n_reference=len(reference), warning=warning)
