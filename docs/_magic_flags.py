"""Write the magics' flag reference from their own argument parsers (so it cannot drift)."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from jupyter_par.magic import ParallelMagics


def _flag_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| flag | value | default | what it does |", "|---|---|---|---|"]
    for action in parser._actions:  # argparse keeps no public list of its arguments
        if isinstance(action, argparse._HelpAction):
            continue
        names = ", ".join(f"`{n}`" for n in action.option_strings) or f"`{action.metavar}`"
        if action.nargs == 0:
            value = "(switch)"
        elif action.choices:
            value = " \\| ".join(f"`{c}`" for c in action.choices)
        else:
            value = f"`{action.metavar or action.dest.upper()}`"
            if action.type is not None:
                value += f" ({action.type.__name__})"
        default = "" if action.default in (None, False) else f"`{action.default}`"
        text = (action.help or "").replace("|", "\\|")
        rows.append(f"| {names} | {value} | {default} | {text} |")
    return rows


def write_magic_reference(path: Path) -> None:
    """The flag tables and the ``?`` help texts of ``%%parallel`` and ``%parallel_config``."""
    cell = ParallelMagics.parallel
    config = ParallelMagics.parallel_config
    lines = [
        "# Every flag of the magics",
        "",
        "Generated at build time from the magics' own argument parsers (what",
        "`%%parallel?` prints), so this page lists exactly the flags the installed",
        "version accepts.",
        "",
        "## `%%parallel`",
        "",
        *_flag_rows(cell.parser),
        "",
        "The help text, as `%%parallel?` shows it:",
        "",
        "```text",
        inspect.cleandoc(cell.__doc__ or ""),
        "```",
        "",
        "## `%parallel_config`",
        "",
        *_flag_rows(config.parser),
        "",
        "```text",
        inspect.cleandoc(config.__doc__ or ""),
        "```",
        "",
        "## `%parallel_shutdown` and `%parallel_panel`",
        "",
        f"- `%parallel_shutdown`: {ParallelMagics.parallel_shutdown.__doc__.strip()}",
        f"- `%parallel_panel`: {ParallelMagics.parallel_panel.__doc__.strip()}",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
