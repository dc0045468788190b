"""Integration names are spelled only where the README says they may be.

A *name* is a kind of ``ident_hooks.registry`` (``AGGREGATOR_KINDS``, ``LEAD_SOURCE_KINDS``)
or an instance of ``include/integrations.yaml`` (its aggregators, lead sources with the
``site_<name>`` sources of its ``sites:`` shorthand, and cost sources). Only the registry, the
YAML file and the kinds' connector modules (``leads/sources/<kind>.py``,
``schedule/aggregators/<kind>.py``, ``costs/<kind>.py``:
a connector speaks for its vendor, whose routes and labels may share a word with another
kind, as UIS's call notifications arrive at ``/uis``) may spell one; everything else asks
the registry or the config.

Scanned: the string literals of every ``.py`` under ``plugins/ident_hooks`` and ``dags/``
(f-string parts included; docstrings and comments are free to cite vendors' sources), and
the string literals and identifiers of every ``.sql`` under ``include/sql`` (comments free).

Matching rule, so that a name which is also a common word ("webhook", "uis") is found only
where it is spelled as a value:

* a literal's *tokens* are its runs of ``[A-Za-z0-9_]``: ``"prodoctorov.ru"`` and
  ``"/tilda/{name}"`` hold a name, ``"webhooks"``, ``"tilda_webhook"`` and ``"ident_ids"``
  do not (names match whole tokens, case-sensitively: names are lowercase by the config's
  rule);
* a one-word literal is a value: any token that is a name counts (``"32top"``);
* in a literal of several words (a message, a label, SQL), a word that is a name by itself,
  once sentence punctuation is stripped, is prose that names a service (``"no such webhook
  source"``) and does not count; a name inside a word with other punctuation does
  (``"where source = 'prodoctorov'"``, ``"see prodoctorov.ru"``);
* an SQL identifier counts when it is a name (bare or double-quoted).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from ident_hooks.config import load_config
from ident_hooks.registry import AGGREGATOR_KINDS, COST_SOURCE_KINDS, LEAD_SOURCE_KINDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "ident_hooks"
INCLUDE_DIR = ROOT / "include"


# Applied migrations are history (a changed file is refused): these spell names that a
# later migration took out of the database.
SUPERSEDED_MIGRATIONS = {
    # 0010 drops the check constraints that listed the aggregators.
    "include/sql/migrations/0001_clinic_schema.sql",
    # 0010 replaces lead_source_label with one that reads integration.integrations.
    "include/sql/migrations/0006_open_leads_view.sql",
}

TOKEN = re.compile(r"[A-Za-z0-9_]+")
SENTENCE_PUNCTUATION = ',.;:!?()«»"—'
SQL_PARTS = re.compile(
    r"(?P<comment>--[^\n]*|/\*.*?\*/)"
    r"|(?P<literal>'(?:[^']|'')*')"
    r"|(?P<quoted>\"[^\"]+\")"
    r"|(?P<dollar>\$[A-Za-z_]*\$)"
    r"|(?P<word>[A-Za-z0-9_]+)",
    re.DOTALL,
)


def integration_names() -> set[str]:
    config = load_config(INCLUDE_DIR / "integrations.yaml")
    return {
        *AGGREGATOR_KINDS,
        *LEAD_SOURCE_KINDS,
        *COST_SOURCE_KINDS,
        *(aggregator.name for aggregator in config.aggregators),
        *(source.name for source in config.lead_sources),
        *(source.name for source in config.cost_sources),
    }


def names_in_literal(value: str, names: set[str]) -> set[str]:
    """The names ``value`` spells, by the module docstring's rule."""
    words = value.split()
    found: set[str] = set()
    for word in words:
        if len(words) > 1 and word.strip(SENTENCE_PUNCTUATION) in names:
            continue  # prose naming a service
        found |= set(TOKEN.findall(word)) & names
    return found


def may_spell_names(relative: str) -> bool:
    """The registry and the kinds' connector modules."""
    if relative == "plugins/ident_hooks/registry.py":
        return True
    kinds = {*AGGREGATOR_KINDS, *LEAD_SOURCE_KINDS, *COST_SOURCE_KINDS}
    for connectors in ("leads/sources", "schedule/aggregators", "costs"):
        folder = f"plugins/ident_hooks/{connectors}/"
        if relative.startswith(folder) and "/" not in relative[len(folder) :]:
            return Path(relative).stem in kinds
    return False


def python_files() -> Iterator[Path]:
    yield from sorted([*PACKAGE.rglob("*.py"), *(ROOT / "dags").rglob("*.py")])


def python_literals(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node.lineno, node.value


def sql_spellings(path: Path, names: set[str]) -> Iterator[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    for part in SQL_PARTS.finditer(text):
        line = text.count("\n", 0, part.start()) + 1
        if part["literal"]:
            found = names_in_literal(part["literal"][1:-1].replace("''", "'"), names)
        elif part["quoted"] or part["word"]:
            found = {(part["quoted"] or part["word"]).strip('"')} & names
        else:
            continue  # comments; a dollar quote's body is SQL and is read as such
        for name in sorted(found):
            yield line, name


def offenders() -> list[str]:
    names = integration_names()
    found = []
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        if may_spell_names(relative):
            continue
        for line, value in python_literals(path):
            for name in sorted(names_in_literal(value, names)):
                found.append(f"{relative}:{line}:{name}")
    for path in sorted((INCLUDE_DIR / "sql").rglob("*.sql")):
        relative = path.relative_to(ROOT).as_posix()
        if relative not in SUPERSEDED_MIGRATIONS:
            found += [f"{relative}:{line}:{name}" for line, name in sql_spellings(path, names)]
    return sorted(found)


def test_matching_rule():
    names = {"webhook", "uis", "prodoctorov", "32top"}
    assert names_in_literal("webhook", names) == {"webhook"}
    assert names_in_literal("/uis/{name}/{secret}", names) == {"uis"}
    assert names_in_literal("prodoctorov.ru", names) == {"prodoctorov"}
    assert names_in_literal("where source = 'prodoctorov'", names) == {"prodoctorov"}
    assert names_in_literal("агрегаторы: ПроДокторов, 32top", names) == set()
    assert names_in_literal("no such webhook source (webhook):", names) == set()
    assert names_in_literal("webhooks tilda_webhook uis_calls", names) == set()


def test_names_are_spelled_only_in_the_registry_config_and_own_connectors():
    found = offenders()
    assert not found, "integration names spelled outside the registry and the config:\n" + (
        "\n".join(found)
    )
