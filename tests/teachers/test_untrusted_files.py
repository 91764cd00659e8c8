"""No checkpoint runs code or takes the server's memory (issue 19): TorchScript and torch.export
archives are refused by their member names, never loaded; what a checkpoint declares is checked
against the memory budget before anything is inflated; non-finite weights are refused by name."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

from kdci_core.cli import main
from kdci_core.errors import InputError
from kdci_core.models import build_model
from kdci_core.models.weights import read_checkpoint, save_checkpoint
from kdci_core.teachers import load_teacher
from tests.crafted import (MIB, VICTIM, cli_peak, crafted_torchscript, data_pkl,
                            zip_bomb_checkpoint)
from tests.helpers import REPO

INSPECT = ["--arch", "lenet5", "--num-classes", "10"]


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    return build_model("lenet5", num_classes=10, in_channels=1).eval()


@pytest.fixture
def no_jit_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load was called on a user's file")
    monkeypatch.setattr(torch.jit, "load", refuse)


def test_teacher_inspect_refuses_torchscript_without_running_it(tmp_path):
    evil, victim = crafted_torchscript(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "kdci_core", "teacher", "inspect", str(evil), *INSPECT],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert victim.read_bytes() == VICTIM, "the archive's code ran"
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "TorchScript" in errors[0] and "runs the code" in errors[0], errors
    assert "torch.save(model.state_dict(), path)" in errors[0] and str(evil) in errors[0]


@pytest.mark.parametrize("name", ["teacher.ts", "teacher.torchscript", "teacher.pth"])
def test_torchscript_refused_under_any_name(tmp_path, no_jit_load, name):
    evil, victim = crafted_torchscript(tmp_path, name)
    for read in (lambda: read_checkpoint(evil), lambda: load_teacher(evil, "lenet5")):
        with pytest.raises(InputError, match="refused: a TorchScript archive"):
            read()
    assert victim.read_bytes() == VICTIM


def test_torch_export_program_refused(tmp_path, no_jit_load, lenet):
    path = tmp_path / "program.pt2"
    torch.export.save(torch.export.export(lenet, (torch.randn(1, 1, 8, 8),)), str(path))
    with pytest.raises(InputError, match="refused: a torch.export / AOTInductor program"):
        read_checkpoint(path)


def test_no_module_loads_torchscript():
    """Our own TorchScript *export* (models/export.py) stays; nothing reads one back."""
    found = [str(p.relative_to(REPO)) for d in ("kdci_core", "app", "pages", "benchmarks")
             for p in (REPO / d).rglob("*.py") if "jit.load" in p.read_text()]
    assert not found, found


def test_a_state_dict_still_loads(tmp_path, lenet):
    torch.save(lenet.state_dict(), tmp_path / "sd.pt")
    torch.save(lenet.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("sd.pt", "legacy.pt"):
        bundle = load_teacher(tmp_path / name, "lenet5")
        x = torch.randn(2, 1, 8, 8)
        assert torch.equal(bundle.model(x), lenet(x))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """Peak memory of ``kdci teacher inspect`` on a small valid checkpoint (torch alone costs a
    few hundred MB): what a refused bomb is compared with."""
    path = save_checkpoint(build_model("lenet5", num_classes=10, in_channels=1),
                           tmp_path_factory.mktemp("base") / "ok.safetensors")
    got = cli_peak(["teacher", "inspect", str(path), *INSPECT])
    assert got["result"] == 0, got
    return got["peak"]


@pytest.mark.parametrize("mib", [1024, 8192])
def test_zip_bomb_checkpoint_refused_within_memory(tmp_path, baseline, mib):
    """~1 MB (a 1 GiB record) and ~8.5 MB (8 GiB): refused from the zip directory alone."""
    bomb = zip_bomb_checkpoint(tmp_path / "bomb.pt", mib)
    assert bomb.stat().st_size < mib * 1100
    got = cli_peak(["teacher", "inspect", str(bomb), *INSPECT])
    print(f"{mib} MiB bomb ({bomb.stat().st_size} bytes): peak {got['peak']} bytes, "
          f"baseline {baseline}")
    assert got["result"] == 2 and "zip bomb" in got["stderr"] and str(bomb) in got["stderr"], got
    assert got["peak"] < 1_000_000_000 and got["peak"] < baseline + 100 * MIB


def test_budget_is_a_setting(tmp_path, monkeypatch, lenet):
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("KDCI_HOME", str(tmp_path / "home"))
    big = {"w": torch.zeros(600_000)}  # 2.3 MiB, stored uncompressed
    torch.save(big, tmp_path / "big.pt")
    save_checkpoint(big, tmp_path / "big.safetensors")
    monkeypatch.setenv("KDCI_MAX_INFLATED_MB", "1")
    for name in ("big.pt", "big.safetensors"):
        with pytest.raises(InputError, match=r"refused: its .* would take 2 MiB in memory, more than "
                                             r"the 1 MiB allowed .*KDCI_MAX_INFLATED_MB.*max_inflated_mb"):
            read_checkpoint(tmp_path / name)
    monkeypatch.delenv("KDCI_MAX_INFLATED_MB")
    (tmp_path / "home" / "settings.toml").write_text("max_inflated_mb = 1\n")
    with pytest.raises(InputError, match="more than the 1 MiB allowed"):
        read_checkpoint(tmp_path / "big.pt")
    (tmp_path / "home" / "settings.toml").write_text("max_inflated_mb = 8\n")
    assert read_checkpoint(tmp_path / "big.pt")[0]["w"].numel() == 600_000
    monkeypatch.setenv("KDCI_MAX_INFLATED_MB", "lots")
    with pytest.raises(InputError, match="KDCI_MAX_INFLATED_MB: expected a whole number"):
        read_checkpoint(tmp_path / "big.pt")


def test_legacy_storages_must_fit_in_the_file(tmp_path):
    """The pre-zip format: torch allocates each storage from the size its pickle declares."""
    path = tmp_path / "legacy.pt"
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                      "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        f.write(data_pkl(64 * MIB, legacy=True))  # 256 MiB declared
        pickle.dump(["0"], f, protocol=2)
        f.write((64 * MIB).to_bytes(8, "little") + bytes(64))
    with pytest.raises(InputError, match=r"declares storages of 256 MiB, more than the file's own"):
        read_checkpoint(path)


@pytest.mark.parametrize("members, message", [
    ({"archive/data/0": bytes(64)}, r"declares storage '0' of 256 MiB, its record holds 64 bytes"),
    ({"archive/data/0": bytes(64), "archive/extra/run.sh": b"rm -rf ~"},
     r"not a PyTorch/safetensors checkpoint: a zip archive with member 'archive/extra/run.sh'"),
])
def test_zip_members_checked_against_data_pkl(tmp_path, members, message):
    """Only torch.save's members, and each storage data.pkl declares fits in its record."""
    import zipfile

    path = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl(64 * MIB))
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(InputError, match=message):
        read_checkpoint(path)


def test_safetensors_header_checked_before_reading(tmp_path, lenet):
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 16, 1 << 16],
                               "data_offsets": [0, 1 << 34]}}).encode()
    path = tmp_path / "lying.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(64))
    with pytest.raises(InputError, match=r"tensor 'w': F32 \[65536, 65536\] needs 17,179,869,184 bytes"):
        read_checkpoint(path)


def test_nan_teacher_refused_by_name(tmp_path, lenet, capsys):
    sd = lenet.state_dict()
    first, last = next(iter(sd)), list(sd)[-1]
    sd[first].view(-1)[:3] = float("nan")
    sd[last].view(-1)[0] = float("inf")
    path = save_checkpoint(sd, tmp_path / "nan.safetensors")
    with pytest.raises(InputError, match=rf"NaN/Inf in 2 tensor\(s\): {first} \(3 of .*{last} \(1 of"):
        load_teacher(path, "lenet5")
    assert main(["teacher", "inspect", str(path), *INSPECT, "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert first in err and "valid" not in err and "Traceback" not in err
