"""MkDocs hook: the reference pages, generated from revseg's own code so they cannot drift.

A page asks for a generated block with a marker on a line of its own:

    <!-- revseg:config -->        every config key (revseg.config.model), its type and default
    <!-- revseg:cli -->           every subcommand and option (revseg.cli.build_parser)
    <!-- revseg:cli run -->       one subcommand only
    <!-- revseg:tables -->        the output tables (revseg.contract)
    <!-- revseg:input -->         the input contract (revseg.contract)
    <!-- revseg:exit-codes -->    the exit codes (revseg.cli's EXIT_* constants)
    <!-- revseg:reasons -->       the quarantine reason codes (revseg.reasons)

The descriptions live beside the pages in docs/reference/*.yaml. The build fails when the
code has a key, option, column, exit code or reason that is not described there, or a file
there describes one the code does not have. The only leeway: config keys listed under
`pending:` in config_keys.yaml may be missing from the code (keys being added); they are
shown once the code has them.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
import typing
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from mkdocs.exceptions import PluginError

from revseg.config.load import is_optional, strip_optional  # how the loader reads a hint

ROOT = Path(__file__).resolve().parents[2]

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
MARKER = re.compile(r"^<!-- revseg:([a-z-]+)(?: ([a-z_-]+))? -->[ \t]*$", re.MULTILINE)

_covered_commands: set[str] = set()


# -- shared ---------------------------------------------------------------------------------


def _descriptions(name: str) -> dict[str, Any]:
    path = REFERENCE / name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise PluginError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise PluginError(f"{path}: expected a mapping at the top level")
    return data


def _check_same(where: str, in_code: list[str], described: Mapping[str, Any]) -> None:
    """Every name in the code described, and nothing described that the code lacks."""
    missing = [name for name in in_code if name not in described]
    unknown = [name for name in described if name not in in_code]
    problems = []
    if missing:
        problems.append("not described: " + ", ".join(missing))
    if unknown:
        problems.append("described but not in the code: " + ", ".join(unknown))
    if problems:
        raise PluginError(f"{where}: " + "; ".join(problems))


def _cell(text: Any) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(value: str) -> str:
    return f"`{value}`"


def _first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


# -- config ---------------------------------------------------------------------------------


def _type_name(hint: Any) -> str:
    if is_optional(hint):
        return _type_name(strip_optional(hint)) + " or `null`"
    if dataclasses.is_dataclass(hint):
        return "{" + ", ".join(f.name for f in dataclasses.fields(hint)) + "}"
    origin = typing.get_origin(hint)
    if origin is Mapping:
        key, value = typing.get_args(hint)
        return f"map: {_type_name(key)} → {_type_name(value)}"
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return "list of strings" if item is str else f"list of {_type_name(item)}"
    names = {
        str: "string",
        int: "whole number",
        float: "number",
        bool: "`true` or `false`",
        date: "date (`YYYY-MM-DD`)",
        Decimal: "amount",
    }
    if hint in names:
        return names[hint]
    raise PluginError(f"config reference: no name for the type {hint!r}; add it to the hook")


def _shown(value: Any) -> str:
    """A default as it would be written in YAML."""
    from revseg.config.model import to_plain

    if value is dataclasses.MISSING:
        return "required"
    plain = to_plain(value)
    if plain is None:
        return "`null`"
    text = yaml.safe_dump(plain, default_flow_style=True, width=10_000, sort_keys=False)
    return _code(text.strip().removesuffix("...").strip())


def _default(owner: Any, f: dataclasses.Field[Any]) -> Any:
    if owner is not None:
        return getattr(owner, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _config_keys() -> list[tuple[str, Any, Any, str]]:
    """(dotted key, type hint, default, section) of every config key, in the code's order.

    A nested section that is always there (`revenue.types`) contributes its keys only; an
    optional one (`revenue.fx_rates`, null by default) is a key itself, and so are its keys.
    """
    from revseg.config.model import Config

    found: list[tuple[str, Any, Any, str]] = []

    def walk(cls: Any, owner: Any, prefix: str, section: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            hint = hints[f.name]
            inner = strip_optional(hint)
            default = _default(owner, f)
            top = section or key
            if dataclasses.is_dataclass(inner):
                if is_optional(hint):
                    found.append((key, hint, default, top))
                    walk(
                        inner,
                        default if dataclasses.is_dataclass(default) else None,
                        key + ".",
                        top,
                    )
                else:
                    walk(inner, default, key + ".", top)
            else:
                found.append((key, hint, default, top))

    walk(Config, Config(), "", "")
    return found


def _values(reference: str) -> tuple[str, ...]:
    module, _, attr = reference.partition(":")
    try:
        value = getattr(__import__(module, fromlist=[attr]), attr)
    except (ImportError, AttributeError) as err:
        raise PluginError(f"config_keys.yaml: values {reference!r}: {err}") from None
    return tuple(value)


def _entry(key: str, entry: Any) -> tuple[str, tuple[str, ...]]:
    """(description, allowed values) of one config_keys.yaml entry."""
    if isinstance(entry, str):
        return entry, ()
    if isinstance(entry, dict) and isinstance(entry.get("text"), str):
        values = _values(entry["values"]) if "values" in entry else ()
        return entry["text"], values
    raise PluginError(f"config_keys.yaml: {key}: expected text, or a mapping with text (values)")


def config_reference() -> str:
    from revseg.config.model import Config

    data = _descriptions("config_keys.yaml")
    pending = data.pop("pending", None) or {}
    if not isinstance(pending, dict):
        raise PluginError("config_keys.yaml: pending: expected a mapping of key to description")
    twice = sorted(set(pending) & set(data))
    if twice:
        raise PluginError(
            "config_keys.yaml: under pending and described again: " + ", ".join(twice)
        )
    keys = _config_keys()
    in_code = [key for key, *_ in keys]
    _check_same(
        "config_keys.yaml (config keys of revseg.config.model)",
        in_code,
        {**data, **{k: v for k, v in pending.items() if k in in_code}},
    )
    described = {**pending, **data}

    hints = typing.get_type_hints(Config)
    out: list[str] = []
    section_rows: dict[str, list[list[str]]] = {}
    for key, hint, default, section in keys:
        text, values = _entry(key, described[key])
        kind = _type_name(hint)
        if values:
            each = "each one of" if typing.get_origin(strip_optional(hint)) is tuple else "one of"
            kind += f", {each} " + ", ".join(_code(v) for v in values)
        section_rows.setdefault(section, []).append([_code(key), kind, _shown(default), text])
    for section, rows in section_rows.items():
        out.append(f"## `{section}`\n")
        inner = strip_optional(hints[section])
        if dataclasses.is_dataclass(inner):
            out.append(_first_paragraph(inner) + "\n")
        out.append(_table(["key", "type", "default", "meaning"], rows) + "\n")
    return "\n".join(out)


# -- CLI ------------------------------------------------------------------------------------


def _subcommands() -> tuple[
    argparse.ArgumentParser, dict[str, tuple[argparse.ArgumentParser, str]]
]:
    from revseg.cli import build_parser

    parser = build_parser()
    found: dict[str, tuple[argparse.ArgumentParser, str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found[name] = (sub, helps.get(name, ""))
    return parser, found


def _option_rows(
    parser: argparse.ArgumentParser, helps: Mapping[str, str] | None = None
) -> list[list[str]]:
    """One row per option. An option without help text takes the help that the option of
    the same name has in another command (`helps`, by dest), such as `run`'s `--verbose`."""
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        metavar = action.metavar or (action.dest.upper() if action.nargs != 0 else None)
        names = action.option_strings or [action.dest]
        shown = ", ".join(_code(f"{n} {metavar}" if metavar else n) for n in names)
        notes = []
        if action.required and action.option_strings:
            notes.append("required")
        if action.choices:
            notes.append("one of " + ", ".join(_code(str(c)) for c in action.choices))
        default = action.default
        help_text = action.help or (helps or {}).get(action.dest, "")
        if default not in (None, False, [], argparse.SUPPRESS) and "default" not in help_text:
            shown_default = default.isoformat() if isinstance(default, date) else str(default)
            notes.append("default " + _code(shown_default))
        if isinstance(action, argparse._AppendAction) and "repeatable" not in help_text:
            notes.append("repeatable")
        note = "; ".join(notes)
        if help_text and note:
            help_text = f"{help_text} ({note})"
        rows.append([shown, help_text or note])
    return rows


def _helps(commands: Mapping[str, tuple[argparse.ArgumentParser, str]]) -> dict[str, str]:
    """The first help text of each option dest across the commands."""
    found: dict[str, str] = {}
    for sub, _ in commands.values():
        for action in sub._actions:
            if action.help and action.help != argparse.SUPPRESS:
                found.setdefault(action.dest, action.help)
    return found


def _usage(parser: argparse.ArgumentParser) -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # the same wrapping on every machine
    try:
        return parser.format_usage().strip()
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def cli_reference(only: str | None) -> str:
    parser, commands = _subcommands()
    if only is not None and only not in commands:
        raise PluginError(f"<!-- revseg:cli {only} -->: revseg has no command {only!r}")
    helps = _helps(commands)
    out = []
    if only is None:
        out.append(f"```text\n{_usage(parser)}\n```\n")
        out.append(_table(["option", "meaning"], _option_rows(parser)) + "\n")
    for name, (sub, help_text) in commands.items():
        if only is not None and name != only:
            continue
        _covered_commands.add(name)
        level = "###" if only is not None else "##"
        if only is None:
            out.append(f"{level} `revseg {name}`\n")
        out.append(help_text[:1].upper() + help_text[1:] + ".\n")
        out.append(f"```text\n{_usage(sub)}\n```\n")
        out.append(_table(["option", "meaning"], _option_rows(sub, helps)) + "\n")
    return "\n".join(out)


# -- tables ---------------------------------------------------------------------------------


def _schemas() -> dict[str, tuple[Any, tuple[str, ...]]]:
    from revseg import contract

    known = {
        contract.CUSTOMER_SEGMENTS: (
            contract.CUSTOMER_SEGMENTS_SCHEMA,
            contract.CUSTOMER_SEGMENTS_PARTITIONS,
        ),
        contract.TIER_BOUNDARIES: (
            contract.TIER_BOUNDARIES_SCHEMA,
            contract.TIER_BOUNDARIES_PARTITIONS,
        ),
        contract.SEGMENT_SUMMARY: (contract.SEGMENT_SUMMARY_SCHEMA, contract.PERIOD_PARTITIONS),
        contract.TIER_MIGRATIONS: (contract.TIER_MIGRATIONS_SCHEMA, contract.PERIOD_PARTITIONS),
        contract.CONCENTRATION: (contract.CONCENTRATION_SCHEMA, contract.PERIOD_PARTITIONS),
        contract.CUSTOMER_CURRENT_SEGMENT: (
            contract.CUSTOMER_CURRENT_SEGMENT_SCHEMA,
            contract.CUSTOMER_CURRENT_SEGMENT_PARTITIONS,
        ),
        contract.QUARANTINED_TRANSACTIONS: (
            contract.QUARANTINE_SCHEMA,
            contract.QUARANTINE_PARTITIONS,
        ),
        contract.RUNS: (contract.RUNS_SCHEMA, ()),
        contract.CUSTOMER_CLV: (contract.CUSTOMER_CLV_SCHEMA, contract.CLV_PARTITIONS),
        contract.CLV_VALIDATION: (contract.CLV_VALIDATION_SCHEMA, contract.CLV_PARTITIONS),
        contract.CLV_MODELS: (contract.CLV_MODELS_SCHEMA, contract.CLV_PARTITIONS),
    }
    unknown = [name for name in contract.ALL_TABLES if name not in known]
    if unknown:
        raise PluginError(
            "revseg.contract.ALL_TABLES has tables the docs hook does not know: "
            + ", ".join(unknown)
            + " (add their schema and partitions to _schemas in docs/hooks/reference.py)"
        )
    return {name: known[name] for name in contract.ALL_TABLES}


def tables_reference() -> str:
    from revseg import contract

    data = _descriptions("table_columns.yaml")
    tables = data.get("tables") or {}
    schemas = _schemas()
    _check_same("table_columns.yaml tables (revseg.contract.ALL_TABLES)", list(schemas), tables)
    out = []
    groups = ", ".join(_code(g) for g in contract.GROUP_COLUMNS)
    for name, (schema, partitions) in schemas.items():
        entry = tables[name] or {}
        columns = entry.get("columns") or {}
        _check_same(f"table_columns.yaml tables.{name}.columns", schema.fieldNames(), columns)
        out.append(f"## `{name}`\n")
        out.append(" ".join(str(entry.get("text", "")).split()) + "\n")
        if partitions:
            out.append("Partitioned by " + ", ".join(_code(p) for p in partitions) + ".\n")
        else:
            out.append("Not partitioned.\n")
        rows = [
            [
                _code(f.name),
                _code(f.dataType.simpleString()),
                "yes" if f.nullable else "no",
                columns[f.name],
            ]
            for f in schema.fields
        ]
        out.append(_table(["column", "type", "nullable", "meaning"], rows) + "\n")
        if "period_grain" in schema.fieldNames():
            out.append(
                f"With `tiers.by`, each group column named there ({groups}) follows "
                "`period_grain`, as a `string` that is never null (a missing or blank value "
                f"is grouped as `{contract.UNKNOWN_GROUP}`).\n"
            )
    return "\n".join(out)


def input_reference() -> str:
    from revseg import contract

    data = _descriptions("table_columns.yaml")
    described = data.get("input") or {}
    in_code = [*contract.REQUIRED_COLUMNS, *contract.OPTIONAL_COLUMNS]
    _check_same("table_columns.yaml input (revseg.contract)", in_code, described)
    rows = [
        [
            _code(name),
            _code(kind.simpleString()),
            "yes" if name in contract.REQUIRED_COLUMNS else "no",
            described[name],
        ]
        for name, kind in contract.CANONICAL_TYPES.items()
    ]
    return _table(["column", "type", "required", "meaning"], rows) + "\n"


# -- exit codes, reasons --------------------------------------------------------------------


def exit_codes_reference() -> str:
    import revseg.cli as cli

    data = _descriptions("exit_codes.yaml")
    constants = {name: value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    _check_same("exit_codes.yaml (revseg.cli EXIT_* constants)", ["SUCCESS", *constants], data)
    codes: dict[str, int] = {"SUCCESS": 0, **constants}
    rows = [
        [_code(str(code)), data[name]] for name, code in sorted(codes.items(), key=lambda c: c[1])
    ]
    return _table(["code", "meaning"], rows) + "\n"


def reasons_reference() -> str:
    from revseg import reasons

    data = _descriptions("reasons.yaml")
    in_code = [*reasons.ROW_REASONS]
    every = [v for n, v in vars(reasons).items() if n.isupper() and isinstance(v, str)]
    in_code += [v for v in every if v not in in_code]  # duplicate: not a rule of one row
    _check_same("reasons.yaml (revseg.reasons)", in_code, data)
    rows = [[_code(reason), data[reason]] for reason in in_code]
    return _table(["reason", "rule"], rows) + "\n"


# -- MkDocs events --------------------------------------------------------------------------


def _block(kind: str, arg: str | None) -> str:
    if kind == "cli":
        return cli_reference(arg)
    if arg is not None:
        raise PluginError(f"<!-- revseg:{kind} {arg} -->: {kind} takes no argument")
    builders = {
        "config": config_reference,
        "tables": tables_reference,
        "input": input_reference,
        "exit-codes": exit_codes_reference,
        "reasons": reasons_reference,
    }
    if kind not in builders:
        raise PluginError(f"<!-- revseg:{kind} -->: no such generated block")
    return builders[kind]()


def on_config(config: Any) -> None:
    # The repository's revseg, also for `mkdocs build` without PYTHONPATH. (MkDocs restores
    # sys.path after importing a hook, so this cannot happen at import time.)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def on_pre_build(config: Any) -> None:
    _covered_commands.clear()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    try:
        return MARKER.sub(lambda m: _block(m.group(1), m.group(2)), markdown)
    except PluginError as err:
        raise PluginError(f"{page.file.src_path}: {err}") from None


def on_post_build(config: Any) -> None:
    _, commands = _subcommands()
    missing = sorted(set(commands) - _covered_commands)
    if missing:
        raise PluginError(
            "revseg commands that no page documents (add a <!-- revseg:cli NAME --> marker): "
            + ", ".join(missing)
        )
