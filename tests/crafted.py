"""Files an attacker would give the product, built in a test: a TorchScript archive whose code
overwrites another file when loaded; files that declare far more than they hold (zip and gzip
bombs, lying pickles), built on disk without ever holding their inflated content in memory; and
a child process that reports its own peak memory, for the bounded-reading tests to measure."""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import subprocess
import sys
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Tuple

import torch

from tests.helpers import REPO

MIB = 1 << 20
_CHUNK = bytes(MIB)
VICTIM = b"another file of the server's user\n"


class Overwriter(torch.nn.Module):
    """A TorchScript module whose ``__setstate__`` (run by ``torch.jit.load``) maps a file of
    the loading user's into memory, shared, and overwrites it."""

    def __init__(self, victim: str, size: int):
        super().__init__()
        self.victim = victim
        self.size = size

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, int, bool]:
        return (self.victim, self.size, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, int, bool]) -> None:
        self.victim = state[0]
        self.training = state[2]
        mapped = torch.from_file(self.victim, shared=True, size=state[1], dtype=torch.uint8)
        self.size = int(mapped.fill_(88).sum())


def crafted_torchscript(folder: Path, name: str = "teacher.pt") -> tuple[Path, Path]:
    """(the archive, the victim file, holding :data:`VICTIM`, that loading it overwrites)."""
    victim = folder / "victim.txt"
    victim.write_bytes(VICTIM)
    path = folder / name
    torch.jit.script(Overwriter(str(victim), len(VICTIM))).save(str(path))
    assert victim.read_bytes() == VICTIM
    with zipfile.ZipFile(path) as z:  # the payload really is in the archive's code
        assert any(b"from_file" in z.read(n) for n in z.namelist() if n.endswith(".py"))
    return path, victim


def deflated_zeros(mib: int):
    """A raw deflate stream of ``mib`` MiB of zeros, yielded in pieces: one MiB compressed once
    after a full flush (no reference back), repeated, then the final block. Seconds for 8 GiB."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    c.compress(_CHUNK)
    c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(_CHUNK) + c.flush(zlib.Z_FULL_FLUSH)  # the same bytes every time from here
    for _ in range(mib):
        yield piece
    yield c.flush()


class _Storage:
    """Stands for a storage of ``numel`` float32 in a hand-written torch.save pickle."""

    def __init__(self, numel: int):
        self.numel = numel


class _Tensor:
    def __init__(self, numel: int):
        self.storage = _Storage(numel)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, (self.storage.numel,), (1,), False, OrderedDict()))


class _TorchPickler(pickle.Pickler):
    """torch.save's pickler in miniature: each storage becomes its persistent id."""

    def __init__(self, file, legacy: bool = False):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            pid = ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


def data_pkl(numel: int, legacy: bool = False) -> bytes:
    f = io.BytesIO()
    _TorchPickler(f, legacy).dump({"weight": _Tensor(numel)})
    return f.getvalue()


def zip_bomb_checkpoint(path: Path, mib: int) -> Path:
    """A torch.save checkpoint (zip) whose one tensor declares ``mib`` MiB of float32, stored as a
    deflated record of zeros: ~1 MB on disk per GiB declared."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl(mib * MIB // 4))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as member:  # sizes and CRC fixed up on close
            member._compressor = _Replay(mib)
            for _ in range(mib):
                member.write(_CHUNK)
    return path


class _Replay:
    """A compressor that returns the precomputed deflate pieces of zeros (zlib at level 9 would
    take a minute for 8 GiB); zipfile still computes the real CRC and sizes."""

    def __init__(self, mib: int):
        self.pieces = deflated_zeros(mib)

    def compress(self, data: bytes) -> bytes:
        assert data == _CHUNK
        return next(self.pieces)

    def flush(self) -> bytes:
        return b"".join(self.pieces)


def gzip_zeros_after(path: Path, head: bytes, mib: int) -> Path:
    """A gzip file of ``head`` then ``mib`` MiB of zeros, written piece by piece."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        f.write(c.compress(head) + c.flush(zlib.Z_FULL_FLUSH))
        for piece in deflated_zeros(mib):
            f.write(piece)
        crc = zlib.crc32(head)
        for _ in range(mib):
            crc = zlib.crc32(_CHUNK, crc)
        f.write(crc.to_bytes(4, "little") + ((len(head) + mib * MIB) % 2**32).to_bytes(4, "little"))
    return path


#: the child: run the code given (it may set ``result`` and ``grew``), then print what it found and
#: its own peak resident memory (VmHWM), on one JSON line
_CHILD = """
import contextlib, io, json, sys
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
result = grew = None
err = io.StringIO()
with contextlib.redirect_stderr(err):
    exec(sys.argv[1])
print(json.dumps({"result": result, "grew": grew, "peak": status("VmHWM"), "stderr": err.getvalue()}))
"""


def child(code: str, env: dict | None = None, limit_bytes: int = 6 << 30) -> dict:
    """Run ``code`` in a child process whose address space is capped at ``limit_bytes`` (so a
    regression fails the test instead of taking the machine's memory); returns its ``result``,
    ``grew``, peak resident memory ``peak`` (bytes) and stderr (``peak`` None if it died)."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    full_env = {**os.environ, "KDCI_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-c", _CHILD, code], cwd=REPO, capture_output=True,
                          text=True, env=full_env, preexec_fn=cap, timeout=600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"result": None, "grew": None, "peak": None, "stderr": proc.stderr[-2000:]}
    return json.loads(lines[-1])


def cli_peak(argv: list[str], env: dict | None = None) -> dict:
    """``kdci ARGV`` in a capped child: ``result`` is its exit status."""
    return child(f"from kdci_core.cli import main\nresult = main({json.dumps(argv)})", env)
