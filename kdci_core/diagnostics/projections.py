"""2-D projections (PCA, t-SNE, UMAP) of features, with the prototypes in the same plane.

Why: the dashboard shows where the confounder prototypes sit among the samples. t-SNE and
UMAP of a few thousand points take seconds to tens of seconds, so results are cached by their
inputs, in process (LRU) and on disk under ``kdci_home()/cache/projections``: re-opening a
run's page costs nothing. BLAS/OpenMP run on one thread, as for the dictionary: sklearn's
t-SNE was 2-25x slower with 2 OpenMP threads on a busy 2-core machine.

Progress is one bar over the real stages. UMAP runs in stages of its own: loading umap-learn,
the nearest neighbours (scikit-learn, exact, in chunks: each reported; 5-10x faster than
umap-learn's own for under 4,096 rows), then umap-learn's fit from them (``precomputed_knn``):
the fuzzy graph and initialisation, said with their seconds (a first fit compiles numba code),
and the layout's epochs, read from umap-learn's own bar (``tqdm_kwds``). scikit-learn's t-SNE
reports no iterations: its fit is one stage, said with its seconds (``Stages.during``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import numbers
import os
import re
import sys
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdci_core.common.device import single_thread_blas
from kdci_core.common.errors import InputError
from kdci_core.common.jsonio import temp_path
from kdci_core.common.paths import kdci_home
from kdci_core.common.progress import Progress, report
from kdci_core.diagnostics.stages import Relay, Stages

METHODS = ("pca", "tsne", "umap")
NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
#: Results kept in memory (a few MB at most: N x 2 float64 each).
MEMORY_ENTRIES = 32
_VERSION = 2  # bump when a method's output changes, to orphan old disk entries
_MEMORY: OrderedDict[str, tuple[np.ndarray, np.ndarray | None, dict]] = OrderedDict()


@dataclass
class Projection:
    """``points`` N x 2; ``extra`` M x 2 (or None), embedded in the same plane."""

    points: np.ndarray
    extra: np.ndarray | None
    method: str
    seconds: float  # compute time; 0 when served from the cache
    cached: bool
    params: dict = field(default_factory=dict)  # what was used (clamped values said so)


def _as_array(name: str, value) -> np.ndarray:
    """A finite, real, contiguous 2-D numpy array (Tensor accepted)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name}: expected a real numeric array, found dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D N x D array, found shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: expected finite values, found "
                         f"{int((~np.isfinite(arr)).sum())} NaN/inf entries")
    return np.ascontiguousarray(arr)


def _positive(name: str, value, integer: bool) -> float:
    ok = isinstance(value, numbers.Integral if integer else numbers.Real)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise InputError(f"{name}: expected {kind}, found {value!r}")
    return int(value) if integer else float(value)


def cache_dir() -> Path:
    """``kdci_home()/cache/projections``, looked up per call (KDCI_HOME may change)."""
    return kdci_home() / "cache" / "projections"


def clear_cache(disk: bool = True) -> None:
    """Forget every cached projection (tests, benchmarks)."""
    _MEMORY.clear()
    if disk and cache_dir().is_dir():
        for f in cache_dir().glob("*.npz"):
            f.unlink(missing_ok=True)


def _key(points: np.ndarray, extra: np.ndarray | None, method: str, params: dict,
         seed: int) -> str:
    h = hashlib.sha1()
    for arr in (points, extra):
        if arr is None:
            h.update(b"none")
        else:
            h.update(f"{arr.shape}|{arr.dtype.str}|".encode())
            h.update(arr.tobytes())
    h.update(json.dumps({"v": _VERSION, "method": method, "params": params, "seed": seed},
                        sort_keys=True).encode())
    return h.hexdigest()


def _load(key: str):
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    path = cache_dir() / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            hit = (z["points"], z.get("extra"), json.loads(str(z["params"])))
    except (OSError, ValueError, KeyError):  # torn or foreign file: recompute and overwrite
        return None
    _remember(key, hit)
    return hit


def _remember(key: str, hit) -> None:
    _MEMORY[key] = hit
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)


def _store(key: str, points: np.ndarray, extra: np.ndarray | None, params: dict) -> None:
    _remember(key, (points, extra, params))
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(folder / f"{key}.npz")
    arrays = {"points": points, "params": np.array(json.dumps(params))}
    if extra is not None:
        arrays["extra"] = extra
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, folder / f"{key}.npz")
    except OSError:  # a read-only or full disk only costs the disk cache
        tmp.unlink(missing_ok=True)


def _pca(x: np.ndarray, extra: np.ndarray | None, params: dict, stages: Stages):
    from sklearn.decomposition import PCA

    n, d = x.shape
    comps = min(2, n, d)
    pca = PCA(n_components=comps, svd_solver="covariance_eigh" if n >= d else "full")
    stages.start(f"PCA: fitting {n} points")
    pts = pca.fit_transform(x)
    if extra is not None:
        stages.start(f"PCA: projecting the {len(extra)} prototypes")
    ext = pca.transform(extra) if extra is not None else None
    params["explained_variance_ratio"] = [float(v) for v in np.nan_to_num(
        pca.explained_variance_ratio_)]
    if comps < 2:  # one feature: the second axis is flat
        pts = np.hstack([pts, np.zeros((n, 2 - comps))])
        ext = None if ext is None else np.hstack([ext, np.zeros((len(ext), 2 - comps))])
    return pts, ext


class _TqdmStream:
    """A file for umap-learn's tqdm bar (``bar_format="{n}/{total}"``): each write becomes a
    progress call, so the layout's epochs reach our callback without patching the library."""

    _COUNT = re.compile(r"(\d+)/(\d+)")

    def __init__(self, callback):
        self.callback = callback

    def write(self, text: str) -> int:
        found = self._COUNT.findall(text or "")
        if found:
            done, total = map(int, found[-1])
            self.callback(done, total, "UMAP: optimising the layout")
        return len(text or "")

    def flush(self) -> None:
        pass


def umap_epochs(n_rows: int) -> int:
    """The layout epochs umap-learn chooses when none are given (500 up to 10,000 rows)."""
    return 500 if n_rows <= 10_000 else 200


#: rows of one nearest-neighbour query (one progress step)
KNN_CHUNK = 512


def umap_units(n_rows: int, loaded: bool) -> dict:
    """Progress units of UMAP's stages: the layout's epochs, and a fifth of them for each stage
    before it (loading umap-learn when this process has not, the neighbours, the fuzzy graph
    with the spectral initialisation)."""
    epochs = umap_epochs(n_rows)
    return {"load": 0 if loaded else epochs // 5, "neighbours": epochs // 5, "graph": epochs // 5,
            "layout": epochs}


def _load_umap(stages: Stages, units: int):
    """umap-learn, imported in its own stage when this process has not yet (2-20 s: numba)."""
    if units:
        stages.start("UMAP: loading umap-learn (a first load compiles numba code: up to a minute)", units)
    try:
        return sys.modules.get("umap") or stages.during(lambda: importlib.import_module("umap"))
    except ImportError:
        raise InputError("method: 'umap' needs the package umap-learn, which is not "
                         "installed (pip install umap-learn)") from None


def _neighbours(data: np.ndarray, k: int, stages: Stages, units: int, what: str):
    """Each row's ``k`` nearest rows (itself first) and their distances, exact, by scikit-learn in
    chunks of rows, each a progress step: what umap-learn computes before its graph (for under
    4,096 rows by calling a numba metric once per pair: ~10 s for 2,000 rows)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=k).fit(data)
    step = stages.inner(f"UMAP: nearest neighbours of {what}", units)
    chunks = max(1, -(-len(data) // KNN_CHUNK))
    dists, idx = [], []
    for i in range(chunks):
        d, j = index.kneighbors(data[i * KNN_CHUNK:(i + 1) * KNN_CHUNK])
        dists.append(d)
        idx.append(j)
        if step is not None:
            step(i + 1, chunks)
    return np.vstack(idx).astype(np.int32), np.vstack(dists).astype(np.float32)


def _umap(data: np.ndarray, n_neighbors: int, seed: int, stages: Stages, what: str) -> np.ndarray:
    """UMAP in stages: loading umap-learn, the neighbours (ours, reported), then umap-learn's fit
    from them (``precomputed_knn``): its graph and initialisation (said with their seconds), its
    layout's epochs (its own bar, read through ``tqdm_kwds``)."""
    units = umap_units(len(data), "umap" in sys.modules)
    umap = _load_umap(stages, units["load"])
    knn = _neighbours(data, n_neighbors, stages, units["neighbours"], what)
    stages.start("UMAP: fuzzy graph and spectral initialisation (a process's first UMAP also "
                 "compiles numba code: up to a minute)", units["graph"])
    layout, relay = stages.inner("UMAP: optimising the layout", units["layout"]), Relay()
    kwargs = {}
    if layout is not None:
        kwargs["tqdm_kwds"] = {"disable": False, "file": _TqdmStream(relay), "bar_format": "{n}/{total}",
                               "mininterval": 0.2}
    model = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, precomputed_knn=knn,
                      force_approximation_algorithm=True, **kwargs)
    return stages.during(lambda: model.fit_transform(data), relay=relay, then=layout)


def _joint(x: np.ndarray, extra: np.ndarray | None, method: str, params: dict, seed: int,
           stages: Stages):
    """t-SNE / UMAP of the points and the extra rows together, split after."""
    data = x if extra is None else np.vstack([x, extra])
    total = data.shape[0]
    what = f"{len(x)} points" + ("" if extra is None else f" and {len(extra)} prototypes together")
    with warnings.catch_warnings():  # UMAP: "n_jobs overridden by random_state", spectral init
        warnings.simplefilter("ignore")
        if method == "tsne":
            from sklearn.manifold import TSNE

            want = params["perplexity"]
            use = min(want, (total - 1) / 3)
            if use < want:
                params["note"] = (f"perplexity {want:g} clamped to {use:.3g} = (N+M-1)/3 for "
                                  f"{total} points")
            params["perplexity_used"] = use
            model = TSNE(n_components=2, init="pca", perplexity=use, random_state=seed)
            stages.start(f"t-SNE: fitting {what} (scikit-learn reports no iterations)")
            emb = stages.during(lambda: model.fit_transform(data))
        else:
            want = params["n_neighbors"]
            use = min(want, total - 1)
            if use < want:
                params["note"] = f"n_neighbors {want} clamped to {use} = N+M-1 for {total} points"
            params["n_neighbors_used"] = use
            emb = _umap(data, use, seed, stages, what)
    emb = np.asarray(emb, dtype=np.float64)
    n = x.shape[0]
    return emb[:n], (None if extra is None else emb[n:])


def project(points, method: str = "pca", *, extra=None, seed: int = 0,
            perplexity: float = 30.0, n_neighbors: int = 15, progress: Progress = None,
            cache: bool = True) -> Projection:
    """Embed ``points`` (N x D) in 2-D; ``extra`` (M x D, e.g. prototypes) in the same plane.

    PCA is fitted on ``points`` only and applied to ``extra``; t-SNE and UMAP see both
    together (they have no out-of-sample transform). ``cache=False`` neither reads nor writes
    the cache (benchmarks). ``progress`` gets one growing ``done`` over the stages (fit, the
    prototypes, UMAP's epochs, the cache write); a cache hit reports ``(1, 1)``.
    """
    if method not in METHODS:
        raise InputError(f"method: expected one of {', '.join(METHODS)}, found {method!r}")
    x = _as_array("points", points)
    if x.shape[0] < 3 or x.shape[1] < 1:
        raise InputError(f"points: expected at least 3 rows and 1 column, found shape {x.shape}")
    ext = None
    if extra is not None:
        ext = _as_array("extra", extra)
        if ext.shape[1] != x.shape[1]:
            raise InputError(f"extra: expected {x.shape[1]} columns (as points), found shape "
                             f"{ext.shape}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(f"seed: expected an integer, found {seed!r}")
    seed = int(seed) % (2**32)
    params: dict = {}
    if method == "tsne":
        params["perplexity"] = _positive("perplexity", perplexity, integer=False)
    elif method == "umap":
        params["n_neighbors"] = _positive("n_neighbors", n_neighbors, integer=True)
        if params["n_neighbors"] < 2:
            raise InputError(f"n_neighbors: expected at least 2, found {n_neighbors}")
    key = _key(x, ext, method, params, seed)
    name = NAMES[method]
    if cache and (hit := _load(key)) is not None:
        report(progress, 1, 1, f"{name}: from the cache")
        pts, ex, used = hit
        return Projection(points=pts.copy(), extra=None if ex is None else ex.copy(),
                          method=method, seconds=0.0, cached=True, params=dict(used))
    rows = len(x) + (0 if ext is None else len(ext))
    fit_units = {"pca": 1 + (ext is not None), "tsne": 1,
                 "umap": sum(umap_units(rows, "umap" in sys.modules).values())}[method]
    stages = Stages(progress, fit_units + int(cache))
    t0 = time.perf_counter()
    xf = x.astype(np.float64)
    ef = None if ext is None else ext.astype(np.float64)
    with single_thread_blas():  # t-SNE on 200 points: 0.6 s on 1 thread, 10-15 s on 2 busy cores
        if method == "pca":
            pts, ex = _pca(xf, ef, params, stages)
        else:
            pts, ex = _joint(xf, ef, method, params, seed, stages)
    seconds = time.perf_counter() - t0
    params["seed"] = seed
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    ex = None if ex is None else np.ascontiguousarray(ex, dtype=np.float64)
    if cache:
        stages.start(f"{name}: saving to the projection cache")
        _store(key, pts.copy(), None if ex is None else ex.copy(), dict(params))
    stages.finish(f"{name}: done in {seconds:.1f} s")
    return Projection(points=pts, extra=ex, method=method, seconds=seconds, cached=False,
                      params=params)
