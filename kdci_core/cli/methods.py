"""``kdci methods``: every method's kind, K, KD temperature, student optimiser and hyperparameter
defaults under both presets, with their sources (``--markdown``: the table in docs/METHODS.md)."""

from __future__ import annotations


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


def methods_table(markdown: bool = True) -> str:
    from ..methods import METHODS

    lines = ["| method | kind | K | KD T | parameter | quick | paper | source |",
             "|---|---|---|---|---|---|---|---|"] if markdown else []
    for name in METHODS.names():
        m = METHODS.get(name)
        for i, (key, quick, paper, source) in enumerate(method_rows(name)):
            head = (name, m.kind, str(m.default_k), f"{m.default_tau:g}") if i == 0 else ("",) * 4
            if markdown:
                cells = [f"`{head[0]}`" if head[0] else "", *head[1:], f"`{key}`", quick, paper, source]
                lines.append("| " + " | ".join(cells) + " |")
            else:
                lines.append(f"{head[0]:<9} {head[1]:<10} {head[2]:>3} {head[3]:>4}  {key:<22} "
                             f"{quick:<8} {paper:<9} {source}")
    return "\n".join(lines)


def cmd_methods(args) -> int:
    print(methods_table(markdown=args.markdown))
    return 0


def add_parser(sub) -> None:
    me = sub.add_parser("methods", help="list the DFKD methods and their defaults (quick and paper presets)")
    me.add_argument("--markdown", action="store_true", help="as the table in docs/METHODS.md")
    me.set_defaults(func=cmd_methods)
