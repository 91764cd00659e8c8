"""The command line's cached check of a detached run (kdci_core/cli/admit.py) agrees with the full
validation: what it admits is exactly ``DistillConfig.validate``'s config, and whatever the full
validation refuses (K too large, a value out of range, too little memory, a GPU it cannot read
without torch, settings it has not seen) it does not admit: it hands them to the full check."""

from __future__ import annotations

import pytest

from kdci_core.cli import admit, build_parser, facts
from kdci_core.cli.common import config_from_args
from kdci_core.errors import InputError

BASE = ["distill", "--teacher", "builtin", "--dataset", "digits", "--method", "deepinv", "--kdci", "on",
        "--detach"]


def args_of(*extra: str):
    argv = [*BASE, *extra]
    return build_parser(argv).parse_args(argv)


@pytest.fixture
def known(tmp_path, monkeypatch):
    """Facts of this engine, nothing remembered yet; this machine's memory: 64 GiB, no GPU."""
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    monkeypatch.setattr(admit, "free_bytes", lambda device: 64 * 2**30 if device in ("cpu", "auto") else False)
    return facts.Facts(facts.build_facts(), key=facts.fingerprint())


def full(*extra: str) -> dict:
    return config_from_args(args_of(*extra)).resolve().to_dict()


def test_nothing_is_admitted_before_a_full_check_of_the_same_core(known):
    assert admit.fast(args_of(), known) is None
    admit.validated(args_of("--seed", "3"), known)
    assert admit.fast(args_of(), known) == full()  # another seed: the same core
    assert admit.fast(args_of("--method", "dafl"), known) is None  # another core: not seen
    assert admit.fast(args_of("--batch-size", "64"), known) is None
    assert admit.fast(args_of("--param", "g_steps=5"), known) is None


@pytest.mark.parametrize("extra", [
    ("--seed", "11"), ("--k", "8"), ("--k", "auto"), ("--k", "64"), ("--tau", "2.5"), ("--pca-dim", "4"),
    ("--epochs", "3"), ("--steps-per-epoch", "7"), ("--lr", "0.2"), ("--fusion", "linear"),
    ("--attn-input", "layernorm"), ("--attn-dim", "32"), ("--attn-init-gain", "0.5"), ("--augment", "crop-flip"),
    ("--log-every", "0"), ("--device", "cpu"), ("--no-amp",), ("--compile",)])
def test_what_it_admits_is_what_the_full_validation_gives(known, extra):
    """Epochs, steps and lr: the key says whether they were given (else the preset's), so the
    first check gave another value of the same flag."""
    other = {"--epochs": "5", "--steps-per-epoch": "9", "--lr": "0.05"}
    admit.validated(args_of(extra[0], other[extra[0]]) if extra[0] in other else args_of(), known)
    assert admit.fast(args_of(*extra), known) == full(*extra)


@pytest.mark.parametrize("extra, refused", [
    (("--k", "65"), "--k 65: K must not exceed the 64"), (("--k", "0"), "--k"), (("--tau", "0.01"), "--tau"),
    (("--epochs", "0"), "--epochs"), (("--steps-per-epoch", "0"), "--steps-per-epoch"), (("--lr", "50"), "--lr"),
    (("--pca-dim", "0"), "--pca-dim"), (("--attn-dim", "0"), "--attn-dim"), (("--seed", "-1"), "--seed"),
    (("--attn-init-gain", "-1"), "--attn-init-gain"), (("--log-every", "-1"), "--log-every")])
def test_what_the_full_validation_refuses_it_does_not_admit(known, extra, refused):
    admit.validated(args_of(), known)
    with pytest.raises(InputError, match=refused.replace("-", r"\-")):
        full(*extra)
    assert admit.fast(args_of(*extra), known) is None


def test_a_default_k_above_the_samples_is_not_admitted(known):
    """The entry was made with a K that fits; left out, K is the method's (32) > 16 images."""
    admit.validated(args_of("--param", "synth_batch=16", "--k", "8"), known)
    assert admit.fast(args_of("--param", "synth_batch=16", "--k", "16"), known) is not None
    assert admit.fast(args_of("--param", "synth_batch=16"), known) is None
    with pytest.raises(InputError, match="K must not exceed the 16"):
        full("--param", "synth_batch=16")


def test_memory_is_read_now_and_a_gpu_goes_to_the_full_check(known, monkeypatch):
    admit.validated(args_of(), known)
    entry = next(iter(known.memo.values()))
    largest = max(batch * per for _what, batch, per, _setting in entry["steps"])
    monkeypatch.setattr(admit, "free_bytes", lambda device: int(largest / known.facts["usable"]) + 1)
    assert admit.fast(args_of(), known) is not None
    monkeypatch.setattr(admit, "free_bytes", lambda device: int(largest / known.facts["usable"]) - 1)
    assert admit.fast(args_of(), known) is None  # too little memory now: the full check says how much
    monkeypatch.setattr(admit, "free_bytes", lambda device: None)  # unreadable: not checked, as in full
    assert admit.fast(args_of(), known) is not None
    monkeypatch.setattr(admit, "free_bytes", lambda device: False)  # a GPU: only torch can tell
    assert admit.fast(args_of(), known) is None


def test_a_teacher_file_changed_since_is_checked_again(known, tmp_path):
    """The key holds the teacher's and its sidecar's size and time: a new sidecar is read again."""
    from kdci_core.teachers.builtin import builtin_teacher, builtin_teacher_path

    builtin_teacher()  # the digits teacher, trained on first use in this KDCI_HOME
    teacher = tmp_path / "t.safetensors"
    teacher.write_bytes(builtin_teacher_path().read_bytes())
    extra = ("--teacher", str(teacher), "--teacher-arch", "lenet5")
    admit.validated(args_of(*extra), known)
    assert admit.fast(args_of(*extra), known) == full(*extra)
    (tmp_path / "t.safetensors.json").write_text('{"image_size": 16}')
    assert admit.fast(args_of(*extra), known) is None
    admit.validated(args_of(*extra), known)
    assert admit.fast(args_of(*extra), known) == full(*extra)


def test_a_folder_changed_since_is_checked_again(known, tmp_path):
    """The key holds the time of the folders a config names: a folder whose entries changed is
    read again by the full check (its dataset may have gone)."""
    import os

    folder = tmp_path / "data"
    folder.mkdir()
    extra = ("--data-root", str(folder))
    admit.validated(args_of(*extra), known)
    assert admit.fast(args_of(*extra), known) is not None
    stat = folder.stat()
    os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert admit.fast(args_of(*extra), known) is None


def test_the_cache_file_round_trips_and_a_code_change_drops_it(known, monkeypatch):
    admit.validated(args_of(), known)
    again = facts.read()
    assert again is not None and again.memo == known.memo
    monkeypatch.setattr(facts, "fingerprint", lambda root=facts.PACKAGE: "another build")
    assert facts.read() is None


@pytest.mark.parametrize("text", ["{not json", '{"schema": 1, "key": "x"}', "[]", ""])
def test_a_damaged_cache_is_rebuilt_from_the_engine(known, text):
    """A torn, foreign or stale cache file costs the import, never an error."""
    path = facts.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert facts.read() is None
    again = facts.load()
    assert again.choices == known.choices and facts.read() is not None  # written back


def test_an_unwritable_home_still_answers(known, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder goes")
    assert facts.load().choices == known.choices
    assert admit.validated(args_of(), known) is not None  # remembered in memory, not written
