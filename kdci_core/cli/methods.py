"""``kdci methods``: every method's kind, K, KD temperature and hyperparameter defaults with
their sources (``--markdown``: the table in docs/METHODS.md)."""

from __future__ import annotations


def methods_table(markdown: bool = True) -> str:
    from ..methods import METHODS

    lines = ["| method | kind | K default | KD temperature | parameter | default | source |",
             "|---|---|---|---|---|---|---|"] if markdown else []
    for name in METHODS.names():
        m = METHODS.get(name)
        for i, (key, val) in enumerate(m.defaults.items()):
            head = (name, m.kind, str(m.default_k), f"{m.default_tau:g}") if i == 0 else ("",) * 4
            if markdown:
                cells = [f"`{head[0]}`" if head[0] else "", *head[1:], f"`{key}`", str(val),
                         m.sources.get(key, "")]
                lines.append("| " + " | ".join(cells) + " |")
            else:
                lines.append(f"{head[0]:<9} {head[1]:<10} {head[2]:>3} {head[3]:>4}  {key:<14} "
                             f"{val!s:<8} {m.sources.get(key, '')}")
    return "\n".join(lines)


def cmd_methods(args) -> int:
    print(methods_table(markdown=args.markdown))
    return 0


def add_parser(sub) -> None:
    me = sub.add_parser("methods", help="list the DFKD methods and their hyperparameter defaults")
    me.add_argument("--markdown", action="store_true", help="as the table in docs/METHODS.md")
    me.set_defaults(func=cmd_methods)
