"""A detached run admitted without torch: ``distill --detach`` checks its config against the
outcome of an earlier full validation of the same settings, and creates the run at once.

How: every config the command line validates in full (``DistillConfig.resolve``, which imports
torch) leaves its outcome in the facts cache (``facts.py``), keyed by the settings validation
reads together, its *core*: the teacher, the data, the method, preset, KDCI, the batch sizes,
the method's parameters..., with the size and time of the model files (teacher, dictionary
source, their sidecars) and the time of the folders (data, wild data). The fields checked alone
are left out of the key and checked here against the same table (``distill.config.RANGES`` and
the cached choices): seed, K, tau, PCA size, the attention's settings, the log interval, and
epochs, steps and learning rate when given (left out, the preset's). Then K against the
dictionary's sample count the entry recorded, and the run's steps (their memory per image, as
``distill.memory`` estimated them) against this machine's free memory, read now.

This module never refuses: whatever it cannot vouch for (no entry, a value out of range, K too
large, a GPU device, too little memory) goes to the full validation, which names the problem in
one line, before a run exists. So a sweep over seeds, K or learning rates pays torch's import
once, for its first run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings

from ..common.errors import InputError, check_range
from ..common.meminfo import available_bytes, gpu_possible
from .common import config_fields
from .facts import Facts

#: checked alone by range (None: not given, for the three that may be left out)
FREE_RANGED = ("seed", "log_every", "attn_dim", "attn_init_gain", "tau", "pca_dim", "k")
NULLABLE = ("tau", "pca_dim", "k")
#: checked alone among choices (None: the run's default)
FREE_CHOSEN = ("fusion", "attn_input", "augment")
#: not checked (argparse's choices, flags)
FREE_PLAIN = ("amp", "compile", "device")
#: checked by range when given, else the preset's (the key records only whether they were given)
GIVEN_OR_PRESET = ("epochs", "steps_per_epoch", "lr")
FREE = FREE_RANGED + FREE_CHOSEN + FREE_PLAIN + GIVEN_OR_PRESET


def _stat(path: str) -> list | None:
    try:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return None


#: the fields naming files or folders the validation reads (a model file: its sidecar too)
MODEL_FILES = ("teacher", "dictionary_source")
FOLDERS = ("data_root", "wild_data")


def core_key(raw: dict) -> str:
    """The memo key of a config as given (``cli.common.config_fields``): its core fields, which of
    ``GIVEN_OR_PRESET`` were given, the size and time of the model files (and their sidecars) and
    the time of the folders it names: a file replaced or a folder changed since is checked again."""
    core = {k: v for k, v in raw.items() if k not in FREE}
    core.update({f"{k} given": raw.get(k) is not None for k in GIVEN_OR_PRESET})
    files = [[_stat(raw[k]), _stat(f"{raw[k]}.json")] for k in MODEL_FILES if raw.get(k) not in (None, "builtin")]
    files += [_stat(raw[k]) for k in FOLDERS if raw.get(k)]
    text = json.dumps({"core": core, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def free_bytes(device: str):
    """This machine's free memory for ``device`` without torch: bytes, None when it cannot be
    read (the full check skips it too), or False when only torch can tell (a GPU)."""
    if device == "cpu" or (device == "auto" and not gpu_possible()):
        return available_bytes()
    return False


def admit(raw: dict, facts: Facts) -> dict | None:
    """The validated config of ``raw`` (a config as given), or None when the cache cannot vouch
    for it (the caller then validates in full)."""
    entry = facts.memo.get(core_key(raw))
    if entry is None:
        return None
    out = dict(entry["config"])
    ranges = facts.facts["ranges"]
    try:
        for name in FREE_RANGED + GIVEN_OR_PRESET:
            value = raw.get(name)
            if value is None and name in GIVEN_OR_PRESET:
                continue  # the preset's value, as the entry has it
            if value is None or (name == "k" and value == "auto"):
                if value is None and name not in NULLABLE:
                    return None
                out[name] = value
                continue
            low, high, integer = ranges[name]
            out[name] = check_range(name, value, low=low, high=high, integer=integer)
    except InputError:
        return None
    for name in FREE_CHOSEN:
        if raw.get(name) is not None and raw[name] not in facts.choices[name]:
            return None
        out[name] = raw.get(name)
    out.update({name: raw.get(name) for name in FREE_PLAIN})
    k = out["k"] if out["k"] is not None else entry["default_k"]
    if out["kdci"] and k != "auto" and k > entry["k_max"]:
        return None
    free = free_bytes(out["device"])
    if free is False:
        return None
    if free is not None and any(batch * per > free * facts.facts["usable"]
                                for _what, batch, per, _setting in entry["steps"]):
        return None
    for text in entry.get("warnings", ()):
        print(f"warning: {text}", file=sys.stderr)
    return out


def fast(args, facts: Facts) -> dict | None:
    """:func:`admit` of the command's options (None when it cannot vouch for them)."""
    try:
        return admit(config_fields(args, facts.defaults), facts)
    except InputError:  # a malformed --param: the full validation says so
        return None


def validated(args, facts: Facts):
    """The full validation (imports torch): the checked DistillConfig, whose outcome is kept in
    the cache for the next call with the same core; warnings are printed, and kept with it."""
    from ..distill.feasibility import dictionary_samples, resource_steps
    from ..methods import METHODS
    from .common import config_from_args

    with warnings.catch_warnings(record=True) as caught:  # the filters as they are: no library noise
        cfg = config_from_args(args).resolve()
    said = list(dict.fromkeys(str(w.message) for w in caught))
    for text in said:
        print(f"warning: {text}", file=sys.stderr)
    method = METHODS.get(cfg.method)
    params = method.resolve_params(cfg.method_params)
    facts.remember(core_key(config_fields(args, facts.defaults)), {
        "config": cfg.to_dict(), "k_max": dictionary_samples(method, params)[0],
        "default_k": method.default_k, "steps": [list(s) for s in resource_steps(cfg, method, params)],
        "warnings": said})
    return cfg
