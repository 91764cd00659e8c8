"""What a checkpoint file is and what it declares, judged from its bytes, its zip directory and its
pickle opcodes alone: nothing is unpickled, inflated or run until these checks pass.

- **No code from a file, ever.** TorchScript archives, ``torch.export`` programs and AOTInductor
  packages run code or operators when loaded (a TorchScript ``__setstate__`` can write any file
  the server's user can), so they are refused by their zip member names, without loading them.
  A ``torch.save`` zip may hold only the members ``torch.save`` writes.
- **Bounded.** A file may not ask for more memory than :mod:`~kdci_core.common.limits` allows:
  the zip members' declared sizes, the storages declared in ``data.pkl`` (legacy format: they must
  fit in the file's own bytes) and a safetensors header's dtype x shape are checked first; a
  compressed member that inflates absurdly is a zip bomb.
- **Named.** A file that is no checkpoint at all (corrupt, truncated, foreign) is told apart
  from a real pickle that asks to run code (which ``torch.load(weights_only=True)`` refuses).
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from pathlib import Path

from ..common.errors import InputError
from ..common.limits import check_inflated, check_ratio, max_inflated_bytes, mib
from ..common.pickle_scan import scan_pickle

#: bytes of a pickle read at most (torch.save's pickles are small: the tensors' bytes are elsewhere)
SCAN_BYTES = 16 << 20
MAX_MEMBERS = 100_000
EXPECTED = ("Expected .safetensors or a torch.save state dict (.pt/.pth)")
SAVE_WEIGHTS = ("Save the weights instead: torch.save(model.state_dict(), path), or "
                "safetensors.torch.save_file(model.state_dict(), path)")
#: the members torch.save writes, below the archive's one top folder
TORCH_SAVE_MEMBER = re.compile(r"[^/]+/(data\.pkl|byteorder|version|\.format_version|"
                               r"\.storage_alignment|\.data/version|\.data/serialization_id|data/\d+)")
#: member names of the formats that run code when loaded, and what to call them
CODE_FORMATS = (
    (re.compile(r"(^|/)code/|(^|/)constants\.pkl$|\.debug_pkl$"), "a TorchScript archive"),
    (re.compile(r"(^|/)(archive_format|serialized_exported_program[^/]*|models/[^/]+\.json)$|"
                r"aotinductor|\.(so|dll|dylib|py|cpp)$"), "a torch.export / AOTInductor program"),
)
#: bytes per element of the storage classes torch.save names in data.pkl
STORAGE_ITEMSIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QInt8Storage": 1, "QUInt8Storage": 1,
    "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}
SAFETENSORS_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                        "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1,
                        "F8_E5M2": 1, "C64": 8}


def not_a_checkpoint_error(path, why: str) -> InputError:
    return InputError(f"checkpoint {path}: not a PyTorch/safetensors checkpoint: {why}. {EXPECTED}")


def check_torch_file(path) -> None:
    """Refuse a ``.pt``/``.pth`` file that is no checkpoint, holds code, or asks for more memory
    than the budget; return quietly when ``torch.load(weights_only=True)`` may read it."""
    path = Path(path)
    budget = max_inflated_bytes()
    try:
        with open(path, "rb") as f:
            end = zipfile._EndRecData(f)  # the end record alone: no directory is read yet
        if end is not None:
            return _check_zip(path, end, budget)
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, zlib.error, UnicodeDecodeError) as exc:
        raise not_a_checkpoint_error(path, f"an unreadable file or archive ({type(exc).__name__}: "
                                           f"{str(exc)[:120]})") from None
    _check_legacy(path, budget)


def _check_zip(path: Path, end, budget: int) -> None:
    members, directory = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if members > MAX_MEMBERS or directory > SCAN_BYTES:
        raise not_a_checkpoint_error(path, f"a zip archive whose directory declares {members:,} "
                                           f"members in {directory:,} bytes (torch.save writes a "
                                           "few per tensor)")
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        refuse_code(path, [i.filename for i in infos])
        foreign = [i.filename for i in infos if not TORCH_SAVE_MEMBER.fullmatch(i.filename)]
        if foreign:
            raise not_a_checkpoint_error(path, f"a zip archive with member {foreign[0]!r}, which "
                                               "torch.save does not write")
        for i in infos:
            if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise not_a_checkpoint_error(path, f"member {i.filename!r} is compressed with zip "
                                                   f"method {i.compress_type}, which torch cannot read")
            if i.compress_type == zipfile.ZIP_DEFLATED:
                check_ratio(f"checkpoint {path}", i.filename, i.compress_size, i.file_size)
        check_inflated(f"checkpoint {path}", sum(i.file_size for i in infos), "its zip members",
                       budget)
        pkl = [i for i in infos if i.filename.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise not_a_checkpoint_error(path, "a zip archive without the one data.pkl of "
                                               "torch.save's format")
        if pkl[0].file_size > SCAN_BYTES:
            raise InputError(f"checkpoint {path}: refused: its data.pkl declares {mib(pkl[0].file_size)}"
                             f", more than the {mib(SCAN_BYTES)} a state dict's pickle needs")
        with z.open(pkl[0]) as member:
            blob = member.read(SCAN_BYTES + 1)
        prefix = pkl[0].filename[: -len("data.pkl")]
        sizes = {i.filename[len(prefix) + len("data/"):]: i.file_size for i in infos
                 if i.filename.startswith(prefix + "data/")}
        try:
            scan = scan_pickle(io.BytesIO(blob), max_ops=budget // 256)
        except ValueError as exc:
            raise not_a_checkpoint_error(path, f"a zip archive whose data.pkl is no pickle stream "
                                               f"({str(exc)[:120]})") from None
    for key, nbytes in _storages(path, scan.persistent_ids, 5).items():
        if nbytes > sizes.get(key, -1):
            raise InputError(f"checkpoint {path}: refused: data.pkl declares storage {key!r} of "
                             f"{mib(nbytes)}, its record holds {mib(max(sizes.get(key, 0), 0))} "
                             "(a damaged or crafted file)")


def refuse_code(path, names) -> None:
    """Refuse an archive whose member names say it holds code (TorchScript, torch.export)."""
    for pattern, label in CODE_FORMATS:
        hit = next((n for n in names if pattern.search(n)), None)
        if hit is not None:
            raise InputError(
                f"checkpoint {path}: refused: {label} (member {hit!r}): loading one runs the code "
                f"inside it, and KDCI never runs code from a file. {SAVE_WEIGHTS}")


def _storages(path, pids: list, length: int) -> dict[str, int]:
    """{storage key: bytes} of torch.save's persistent ids ('storage', type, key, location,
    numel[, view]); anything else is refused."""
    out: dict[str, int] = {}
    for pid in pids:
        ok = isinstance(pid, tuple) and len(pid) == length and pid[0] == "storage"
        module, _, kind = pid[1].rpartition(".") if ok and isinstance(pid[1], str) else ("", "", "")
        if module not in ("torch", "torch.storage") or kind not in STORAGE_ITEMSIZE \
                or not isinstance(pid[2], str) or not isinstance(pid[4], int) or pid[4] < 0:
            raise InputError(f"checkpoint {path}: refused: its pickle declares an object that is "
                             "not one of torch.save's storages (a persistent id it cannot read)")
        out[pid[2]] = max(out.get(pid[2], 0), pid[4] * STORAGE_ITEMSIZE[kind])
    return out


def _check_legacy(path: Path, budget: int) -> None:
    """The pre-1.6 format: four pickles (magic number, protocol, system info, the object whose
    persistent ids declare each storage), then the storages' bytes, which torch allocates from
    the declared sizes: they must fit in the file."""
    with open(path, "rb") as f:
        blob = f.read(SCAN_BYTES)
    if blob.startswith(b"PK\x03\x04"):
        raise not_a_checkpoint_error(path, "a damaged or truncated zip archive (torch.save's "
                                           "format): no central directory")
    stream, pids = io.BytesIO(blob), []
    for _ in range(4):
        if stream.tell() == len(blob):
            break
        try:
            pids += scan_pickle(stream, max_ops=budget // 256).persistent_ids
        except ValueError as exc:
            text = str(exc)
            if len(blob) == SCAN_BYTES and any(w in text for w in ("remain", "not enough", "exhausted")):
                raise InputError(f"checkpoint {path}: refused: a pickle larger than {mib(SCAN_BYTES)}; "
                                 f"a state dict's is far smaller. {SAVE_WEIGHTS}") from None
            raise not_a_checkpoint_error(
                path, f"neither a zip archive (torch.save) nor a pickle stream (legacy torch.save): "
                      f"{text[:120]}; it starts with bytes {blob[:8].hex(' ') or '(none)'}") from None
    declared = sum(_storages(path, pids, 6).values())
    size = path.stat().st_size
    if declared > size:
        raise InputError(f"checkpoint {path}: refused: its pickle declares storages of "
                         f"{mib(declared)}, more than the file's own {mib(size)} (a damaged or "
                         "crafted file)")
    check_inflated(f"checkpoint {path}", declared, "its storages", budget)


def check_safetensors(path) -> None:
    """Parse a safetensors header ourselves (8-byte little-endian length, then JSON): every
    tensor's dtype x shape must match its byte range, lie in the file and fit the budget."""
    path = Path(path)
    size = path.stat().st_size

    def bad(why: str) -> InputError:
        return InputError(f"checkpoint {path}: expected a safetensors file, found an unreadable "
                          f"one ({why})")

    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= min(SCAN_BYTES, size - 8):
            raise bad(f"a header length of {n:,} bytes in a file of {size:,}")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad(f"its header is no JSON: {str(exc)[:80]}") from None
    if not isinstance(header, dict):
        raise bad("its header is no JSON object")
    total, room = 0, size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape, (start, stop) = entry["shape"], entry["data_offsets"]
            itemsize = SAFETENSORS_ITEMSIZE[entry["dtype"]]
            if not all(isinstance(v, int) and v >= 0 for v in (*shape, start, stop)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r}: expected a known dtype, a shape and data_offsets, found "
                      f"{str(entry)[:80]}") from None
        nbytes = math.prod(shape) * itemsize
        if stop - start != nbytes or stop > room:
            raise bad(f"tensor {name!r}: {entry['dtype']} {shape} needs {nbytes:,} bytes, its range "
                      f"is {start:,}..{stop:,} of the {room:,} data bytes")
        total += nbytes
    check_inflated(f"checkpoint {path}", total, "its tensors")


def safetensors_metadata(path) -> dict[str, str]:
    """The text metadata of a ``.safetensors`` file's header, read alone once the header was
    checked (:func:`check_safetensors`); what ``teacher train`` records there (values JSON)."""
    path = Path(path)
    check_safetensors(path)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise InputError(f"checkpoint {path.name}: expected a safetensors file, found an unreadable "
                         f"one ({type(exc).__name__}: {exc})") from None
