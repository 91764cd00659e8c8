"""``kdci methods``: every method's kind, K, KD temperature, student optimiser and hyperparameter
defaults under both presets, with their sources (``--markdown``: the table in docs/METHODS.md).

Startup: the table's data is cached, so the command answers without importing torch.

Each method declares its metadata once, as class attributes beside its code
(``kdci_core/methods/<name>.py``), and reading them means importing the registry, that is torch
and every method module (~5 s). The first ``methods`` call does exactly that, then writes the
table's data (per method: kind, K, KD T and the rows already formatted) as JSON to
``kdci_home()/cache/methods.json``; later calls read it back and import nothing of the engine.

Why a cache and not reading the class attributes statically with ``ast``: the attributes are
not plain literals (``sources`` uses f-strings over module constants, ``choices`` module-level
tuples, values are inherited along ``DFKDMethod`` -> ``GenerationMethod``/``SamplingMethod`` ->
``GeneratorMethod`` and the registry sets ``name``), so a static reader would be a second
interpreter of those files that silently drifts from what the engine really uses. The cache
holds what Python computed from the classes themselves, so it is faithful by construction.

When it is stale: the entry is keyed by a fingerprint (``CACHE_SCHEMA``, the package version,
and the sha256 of the content of every watched file). The watched files are
``kdci_core/methods/*.py`` and ``kdci_core/distill/presets.py`` (a new method file counts)
plus every ``kdci_core`` module that was loaded when the data was built, recorded in the entry,
so an edit to a constant a method imports from elsewhere invalidates it too. Hashing contents
rather than comparing mtimes costs about a millisecond and survives copies and checkouts that
keep or reset times. A missing, corrupt, mismatched or unreadable entry, or an unwritable home,
is never an error: the command falls back to importing the registry (and rewrites the entry
when it can).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from .. import __version__
from ..common.jsonio import atomic_write_text
from ..common.paths import kdci_home

#: bump when the layout of the cached data changes
CACHE_SCHEMA = 1
#: the package root, against which the cached file list is relative
PACKAGE = Path(__file__).resolve().parents[1]
#: files (globs under PACKAGE) whose edits can change the table, whatever the build imported
WATCHED = ("methods/*.py", "distill/presets.py")


def method_rows(name: str) -> list[tuple[str, str, str, str]]:
    """(parameter, quick value, paper value, source) for every default of method ``name``: the
    student optimiser and loop first, then the method's own parameters."""
    from ..distill.presets import LOOP, QUICK_LR
    from ..methods import METHODS

    m = METHODS.get(name)
    paper_loop = LOOP["paper"] | m.paper_loop
    rows = [("student lr", str(QUICK_LR), str(m.student_defaults["lr"]), m.student_source),
            ("student weight_decay", str(m.student_defaults["weight_decay"]),
             str(m.student_defaults["weight_decay"]), m.student_source)]
    rows += [(f"loop {key}", str(LOOP["quick"][key]), str(paper_loop[key]), m.loop_source)
             for key in ("batch_size", "epochs", "steps_per_epoch")]
    rows += [(key, str(val), str(m.paper_params.get(key, val)), m.sources.get(key, ""))
             for key, val in m.defaults.items()]
    return rows


def build_table_data() -> list[dict]:
    """The table's data from the method classes themselves (imports the registry, so torch)."""
    from ..methods import METHODS

    data = []
    for name in METHODS.names():
        m = METHODS.get(name)
        data.append({"name": name, "kind": m.kind, "default_k": m.default_k,
                     "default_tau": m.default_tau, "rows": [list(r) for r in method_rows(name)]})
    return data


#: the plain table's columns: (header, width, alignment) as its rows are formatted
_TEXT_HEADER = f"{'METHOD':<9} {'KIND':<10} {'K':>3} {'KD T':>4}  {'PARAMETER':<22} {'QUICK':<8} {'PAPER':<9} SOURCE"


def render(data: list[dict], markdown: bool = True) -> str:
    lines = ["| method | kind | K | KD T | parameter | quick | paper | source |",
             "|---|---|---|---|---|---|---|---|"] if markdown else [_TEXT_HEADER]
    for m in data:
        for i, (key, quick, paper, source) in enumerate(m["rows"]):
            head = ((m["name"], m["kind"], str(m["default_k"]), f"{m['default_tau']:g}") if i == 0
                    else ("",) * 4)
            if markdown:
                cells = [f"`{head[0]}`" if head[0] else "", *head[1:], f"`{key}`", quick, paper, source]
                lines.append("| " + " | ".join(cells) + " |")
            else:
                lines.append(f"{head[0]:<9} {head[1]:<10} {head[2]:>3} {head[3]:>4}  {key:<22} "
                             f"{quick:<8} {paper:<9} {source}")
    return "\n".join(lines)


# --- the cache ------------------------------------------------------------------------------
def cache_path() -> Path:
    """``kdci_home()/cache/methods.json``, looked up per call (KDCI_HOME may change)."""
    return kdci_home() / "cache" / "methods.json"


def watched_files(root: Path = PACKAGE) -> set[str]:
    return {p.relative_to(root).as_posix() for pattern in WATCHED for p in root.glob(pattern)}


def loaded_files(root: Path = PACKAGE) -> set[str]:
    """The files, relative to ``root``, of the ``kdci_core`` modules loaded in this process."""
    out = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and (name == "kdci_core" or name.startswith("kdci_core.")):
            path = Path(file).resolve()
            if path.is_relative_to(root):
                out.add(path.relative_to(root).as_posix())
    return out


def fingerprint(files, root: Path = PACKAGE) -> str:
    """sha256 over the schema, the package version and the name and content of every file."""
    h = hashlib.sha256(f"kdci-methods/{CACHE_SCHEMA}/{__version__}\n".encode())
    for rel in sorted(set(files)):
        h.update(rel.encode() + b"\0")
        try:
            h.update(hashlib.sha256((root / rel).read_bytes()).digest())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def _valid(data) -> bool:
    def text(v):
        return isinstance(v, str)

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    return isinstance(data, list) and bool(data) and all(
        isinstance(m, dict) and text(m.get("name")) and text(m.get("kind"))
        and number(m.get("default_k")) and number(m.get("default_tau"))
        and isinstance(m.get("rows"), list) and m["rows"]
        and all(isinstance(r, list) and len(r) == 4 and all(map(text, r)) for r in m["rows"])
        for m in data)


def read_cache() -> list[dict] | None:
    """The cached data when its fingerprint matches the files now; None otherwise (whatever the
    reason: missing, corrupt, stale, unreadable)."""
    try:
        entry = json.loads(cache_path().read_text(encoding="utf-8"))
        files = entry["files"]
        if (entry["schema"] != CACHE_SCHEMA or not isinstance(files, list)
                or not all(isinstance(f, str) for f in files)):
            return None
        if entry["key"] != fingerprint(set(files) | watched_files()):
            return None
        return entry["methods"] if _valid(entry["methods"]) else None
    except Exception:  # noqa: BLE001 (a cache: any failure means "build it")
        return None


def write_cache(data: list[dict]) -> bool:
    """Store ``data`` keyed by the files loaded to build it; False when the home is unwritable."""
    files = sorted(watched_files() | loaded_files())
    entry = {"schema": CACHE_SCHEMA, "version": __version__, "key": fingerprint(files),
             "files": files, "methods": data}
    try:
        path = cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(entry, indent=1))
        return True
    except (OSError, ValueError, TypeError):
        return False


def table_data() -> list[dict]:
    """The table's data: from the cache when it is current, else from the classes (then cached)."""
    data = read_cache()
    if data is None:
        data = build_table_data()
        write_cache(data)
    return data


def methods_table(markdown: bool = True) -> str:
    return render(table_data(), markdown)


def cmd_methods(args) -> int:
    print(methods_table(markdown=args.markdown))
    return 0


def add_parser(sub) -> None:
    me = sub.add_parser("methods", help="list the DFKD methods and their defaults (quick and paper presets)")
    me.add_argument("--markdown", action="store_true", help="as the table in docs/METHODS.md")
    me.set_defaults(func=cmd_methods)
