"""What an ONNX file is and asks for, judged from its graph alone: nothing runs until these pass.

An ONNX graph is data as long as it uses only the standard operator sets; a custom-op domain
needs a shared library (code) registered with onnxruntime, and an external-data ``location`` may
point anywhere on disk. So, before onnxruntime sees the file:
- its size, and the bytes its external tensors declare, fit the memory budget
  (:mod:`~kdci_core.common.limits`);
- every operator domain (the model's and each function's ``opset_import``, every node, in
  subgraphs and model-local functions too) is a standard one, or a model-local function
  (a composition of checked nodes, not code);
- every external tensor names a ``location`` that resolves, symlinks included, inside the model
  file's own folder, and its declared bytes lie within that file;
- it has one image input ``N x C x H x W`` (N may be symbolic) and one output ``N x K`` (K >= 2).
Each refusal is one :class:`InputError` line: the file, what was expected, what was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..common.errors import InputError
from ..common.limits import check_inflated

#: the operator sets onnxruntime implements itself ("" is ai.onnx's usual spelling)
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
SUFFIX = ".onnx"
#: the input element types an image can be given as (ONNX TensorProto names)
FLOAT_TYPES = ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16")


def is_onnx_path(path) -> bool:
    """A teacher named by an ``.onnx`` file: read with this module, no architecture needed."""
    return isinstance(path, (str, Path)) and Path(str(path)).suffix.lower() == SUFFIX


@dataclass(frozen=True)
class OnnxGraph:
    """One checked ONNX classifier: its input and output, and what it declares."""

    path: Path
    input_name: str
    input_type: str                  # ONNX element type name (FLOAT, FLOAT16, ...)
    batch: int | None                # None: symbolic (any batch size)
    channels: int
    height: int
    width: int
    output_name: str
    num_classes: int
    parameter_count: int             # elements of its floating-point initializers (their dims)
    external_bytes: int
    metadata: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width


def _subgraphs(node):
    from onnx import AttributeProto

    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def _walk(model):
    """Every graph (the main one, If/Loop/Scan bodies) and every node, in functions too."""
    graphs, nodes = [model.graph], []
    pending = [model.graph.node] + [f.node for f in model.functions]
    while pending:
        for node in pending.pop():
            nodes.append(node)
            for g in _subgraphs(node):
                graphs.append(g)
                pending.append(g.node)
    return graphs, nodes


def _tensors(graphs, nodes):
    """Every tensor the model stores: initializers (dense and sparse) and tensor attributes."""
    for g in graphs:
        yield from g.initializer
        for s in g.sparse_initializer:
            yield from (s.values, s.indices)
    for node in nodes:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for s in ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors):
                yield from (s.values, s.indices)


def check_domains(source, model, nodes) -> None:
    """Refuse any operator domain that is neither standard nor a model-local function's."""
    local = {(f.domain, f.name) for f in model.functions}
    local_domains = {d for d, _ in local}
    declared = [o.domain for o in model.opset_import] + [o.domain for f in model.functions
                                                          for o in f.opset_import]
    for domain in declared:
        if domain not in STANDARD_DOMAINS and domain not in local_domains:
            _refuse_domain(source, domain, "its opset_import declares")
    for node in nodes:
        if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in local:
            _refuse_domain(source, node.domain, f"node {node.name or node.op_type!r} ({node.op_type}) uses")


def _refuse_domain(source, domain: str, where: str) -> None:
    raise InputError(f"{source}: expected only the standard ONNX operator domains (ai.onnx, "
                     f"ai.onnx.ml), found custom-op domain {domain!r} ({where} it): custom operators "
                     f"run code from a library, so this graph is refused")


def check_external_data(source, path: Path, tensors) -> int:
    """Every external tensor's ``location`` inside the model's folder, its bytes within that
    file; returns the total bytes they declare."""
    from onnx import TensorProto

    folder = path.parent.resolve()
    total = 0
    for t in tensors:
        if t.data_location != TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in t.external_data}
        location = entries.get("location", "")
        where = f"tensor {t.name!r}: external data location {location!r}"
        if not location:
            raise InputError(f"{source}: {where}: expected a file name beside the model, found none")
        try:
            target = (path.parent / location).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
            raise InputError(f"{source}: {where}: expected a file beside the model, found a path "
                             f"that does not resolve ({type(exc).__name__})") from None
        if Path(location).is_absolute() or not target.is_relative_to(folder):
            raise InputError(f"{source}: {where}: expected a file inside the model's folder "
                             f"{folder}, found one that resolves to {target}")
        if not target.is_file():
            raise InputError(f"{source}: {where}: expected an existing file beside the model, "
                             f"found none at {target}")
        try:
            offset = int(entries.get("offset", 0))
            size = target.stat().st_size
            length = int(entries["length"]) if "length" in entries else size - offset
        except ValueError as exc:
            raise InputError(f"{source}: {where}: expected whole-number offset/length, found {exc}") from None
        if offset < 0 or length < 0 or offset + length > size:
            raise InputError(f"{source}: {where}: expected bytes {offset:,}..{offset + length:,} "
                             f"inside that file, found a file of {size:,} bytes")
        total += length
    return total


def _dims(value_info) -> list:
    """A value's dimensions: ints where fixed, the symbol's name (or '?') where not."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _fixed(source, dims, index: int, what: str, image_size: int | None) -> int:
    value = dims[index]
    if isinstance(value, int) and value > 0:
        return value
    if what in ("H", "W") and image_size is not None:
        return int(image_size)  # the data's size (a value <= 0 passes through: "any size")
    field_hint = ("give the image size (the dataset's, image_size) or export with a fixed "
                  f"{what}") if what in ("H", "W") else f"export the model with a fixed {what}"
    raise InputError(f"{source}: input dimension {what}: expected a fixed size, found "
                     f"{value!r} (symbolic); {field_hint}")


def check_io(source, model, image_size: int | None = None) -> dict:
    """The one image input ``N x C x H x W`` and the one logits output ``N x K``."""
    from onnx import TensorProto

    stored = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in stored]  # IR < 4 lists weights too
    outputs = list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(f"{source}: expected one image input and one logits output, found "
                         f"{len(inputs)} input(s) ({', '.join(i.name for i in inputs) or '-'}) and "
                         f"{len(outputs)} output(s) ({', '.join(o.name for o in outputs) or '-'})")
    x, y = inputs[0], outputs[0]
    elem = TensorProto.DataType.Name(x.type.tensor_type.elem_type) if x.type.HasField("tensor_type") else "?"
    if elem not in FLOAT_TYPES:
        raise InputError(f"{source}: input {x.name!r}: expected floating-point images "
                         f"({', '.join(FLOAT_TYPES)}), found {elem}")
    dims = _dims(x)
    if len(dims) != 4:
        raise InputError(f"{source}: input {x.name!r}: expected N x C x H x W images, found "
                         f"{len(dims)} dimension(s) {dims}")
    out = _dims(y)
    if len(out) != 2 or not isinstance(out[1], int) or out[1] < 2:
        raise InputError(f"{source}: output {y.name!r}: expected N x K logits with a fixed K >= 2, "
                         f"found dimensions {out}")
    return {"input_name": x.name, "input_type": elem,
            "batch": dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None,
            "channels": _fixed(source, dims, 1, "C", None),
            "height": _fixed(source, dims, 2, "H", image_size),
            "width": _fixed(source, dims, 3, "W", image_size),
            "output_name": y.name, "num_classes": int(out[1])}


def _load(source, path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise InputError(f"{source}: expected an ONNX model (a ModelProto), found bytes that do "
                         f"not parse ({type(exc).__name__})") from None
    if not model.ir_version or not model.HasField("graph"):
        raise InputError(f"{source}: expected an ONNX model (a ModelProto with a graph), found "
                         f"none (ir_version {model.ir_version}, no graph)")
    return model


def read_onnx_graph(path, *, image_size: int | None = None) -> OnnxGraph:
    """Check an ONNX file (see the module's doc) and describe it; ``image_size`` fills a
    symbolic H and W (the dataset's size)."""
    import math

    import onnx

    path = Path(str(path)).expanduser()
    source = f"ONNX teacher {path}"
    if not path.is_file():
        raise InputError(f"{source}: expected an existing .onnx file, found none")
    size = path.stat().st_size
    check_inflated(source, size, "its graph")
    model = _load(source, path)
    graphs, nodes = _walk(model)
    check_domains(source, model, nodes)
    tensors = list(_tensors(graphs, nodes))
    external = check_external_data(source, path, tensors)
    check_inflated(source, size + external, f"its graph and {external:,} bytes of external data")
    try:
        onnx.checker.check_model(str(path))  # by path: external files are looked for beside it
    except onnx.checker.ValidationError as exc:
        raise InputError(f"{source}: expected a valid ONNX model, found: "
                         f"{str(exc).strip().splitlines()[0][:300]}") from None
    io = check_io(source, model, image_size)
    floats = {getattr(onnx.TensorProto, name) for name in FLOAT_TYPES}
    params = sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type in floats)
    meta = {"producer": f"{model.producer_name} {model.producer_version}".strip(),
            "opset": ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import),
            **{p.key: p.value for p in model.metadata_props}}
    return OnnxGraph(path=path, parameter_count=int(params), external_bytes=external,
                     metadata=meta, **io)


def onnx_input_shape(path, *, image_size: int | None = None) -> tuple[int, int, int, int]:
    """``(C, H, W, num_classes)`` read from the graph alone (nothing runs): the resolution a
    black-box teacher wants. ``image_size`` stands for a symbolic H and W (returned as given,
    so ``-1`` asks "fixed or any?"); without it a symbolic H or W is an InputError."""
    g = read_onnx_graph(path, image_size=image_size)
    return g.channels, g.height, g.width, g.num_classes
