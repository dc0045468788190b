"""The marketing-channel rules: which channel a lead came through.

The rules are data: ``include/marketing_channels.yaml`` (tags and referrer domains, which a
marketer may extend) and each lead source's ``channel`` in ``include/integrations.yaml``
(default from its kind in the registry). :func:`classify` applies them in Python (tests,
docs, one-off checks) and :func:`channel_sql` renders the same rules as one SQL ``CASE``
expression that the report build runs over the leads table. A test checks both agree.

Order of decision, first match wins:

0. A call (a UIS call notification, :data:`CALL_SOURCE_KINDS`) to a number of the file's
   ``numbers`` map: that number's channel — a call forwarded from an aggregator's profile
   is the aggregator's, whatever tags call tracking gave it (:func:`dialled_number`).
1. The lead's source fixes its channel (:meth:`IntegrationsConfig.source_channels`, e.g.
   ``aggregator`` for an aggregator's own booking system, whatever tags the lead carries —
   the booking was made on the aggregator; its tags say how the patient reached it).
2. The lead has ``utm_source`` or ``utm_medium`` (a lone ``utm_campaign`` does not count):
   the file's ``utm`` rules in order, else ``other``.
3. The lead has a referrer host: its ``referrers`` rules in order (a domain matches itself
   and its subdomains; ``name.*`` matches any top-level domain, e.g. ``google.com.tr``),
   else ``referral``.
4. Nothing known: ``direct``.

Values are compared trimmed of spaces and lowercased. Changing these rules changes the
build's definitions hash, so the next run rebuilds every report table by itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ident_hooks.config import load_config
from ident_hooks.leads.normalise import normalise_phone
from ident_hooks.paths import INCLUDE_DIR
from ident_hooks.registry import LEAD_SOURCE_KINDS
from ident_hooks.reports.channel_codes import CHANNELS

RULES_PATH = INCLUDE_DIR / "marketing_channels.yaml"
# A deployment keeps its own file elsewhere (an installed provider's include/ is not edited).
RULES_PATH_VARIABLE = "IDENT_MARKETING_CHANNELS_CONFIG"
_TAGS = ("utm_medium", "utm_source")
# Lead source kinds whose leads can be calls (the registry's ``carries_calls``), and how a
# call lead keeps the number dialled: the UIS notification's ``virtual_phone_number`` in the
# record as received (``raw``). The UIS Data API pull reads site requests only
# (ident_hooks.leads.sources.uis), so no calls.
CALL_SOURCE_KINDS = tuple(kind.name for kind in LEAD_SOURCE_KINDS.values() if kind.carries_calls)
CALL_MARK = "call_session_id"
DIALLED_FIELD = "virtual_phone_number"


class ChannelRulesError(ValueError):
    """marketing_channels.yaml says something the rules cannot use."""


@dataclass(frozen=True)
class UtmRule:
    channel: str
    tag: str  # "utm_medium" or "utm_source"
    values: tuple[str, ...]


@dataclass(frozen=True)
class ReferrerRule:
    channel: str
    domains: tuple[str, ...]


@dataclass(frozen=True)
class DialledNumber:
    """One of the clinic's numbers: where it stands (``label``, for staff) and its channel."""

    number: str  # E.164
    channel: str
    label: str


UTM_FALLBACK = "other"
REFERRER_FALLBACK = "referral"
NOTHING_KNOWN = "direct"

_SAFE_VALUE = re.compile(r"^[a-z0-9][a-z0-9._*-]*$")


def _values(where: str, values: Any) -> tuple[str, ...]:
    """The rule values are rendered into SQL as literals: keep them plain."""
    if not isinstance(values, list) or not values:
        raise ChannelRulesError(f"{where}: a non-empty list of values is needed")
    bad = [value for value in values if not isinstance(value, str) or not _SAFE_VALUE.match(value)]
    if bad:
        raise ChannelRulesError(f"{where}: values must be plain lowercase words, not {bad}")
    return tuple(values)


def _rule_channel(where: str, rule: Any) -> str:
    if not isinstance(rule, dict) or rule.get("channel") not in CHANNELS:
        raise ChannelRulesError(f"{where}: channel must be one of {', '.join(CHANNELS)}")
    return rule["channel"]


def load_rules(
    path: Path | None = None,
) -> tuple[tuple[UtmRule, ...], tuple[ReferrerRule, ...]]:
    """The UTM and referrer rules of ``path``, else ``$IDENT_MARKETING_CHANNELS_CONFIG``, else
    ``include/marketing_channels.yaml``, checked; errors name the file and the rule."""
    path = path or Path(os.environ.get(RULES_PATH_VARIABLE) or RULES_PATH)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    utm_rules = []
    for n, rule in enumerate(data.get("utm") or [], 1):
        where = f"{path.name}: utm rule {n}"
        channel = _rule_channel(where, rule)
        tags = [tag for tag in rule if tag != "channel"]
        if len(tags) != 1 or tags[0] not in _TAGS:
            raise ChannelRulesError(f"{where}: name one tag, utm_medium or utm_source")
        utm_rules.append(UtmRule(channel, tags[0], _values(where, rule[tags[0]])))
    referrer_rules = []
    for n, rule in enumerate(data.get("referrers") or [], 1):
        where = f"{path.name}: referrer rule {n}"
        channel = _rule_channel(where, rule)
        if set(rule) != {"channel", "domains"}:
            raise ChannelRulesError(f"{where}: a referrer rule has a channel and domains")
        referrer_rules.append(ReferrerRule(channel, _values(where, rule["domains"])))
    return tuple(utm_rules), tuple(referrer_rules)


def load_numbers(path: Path | None = None) -> dict[str, DialledNumber]:
    """The ``numbers`` map of the rules file (as :func:`load_rules` finds it), keyed by the
    number in E.164; errors name the file and the entry."""
    path = path or Path(os.environ.get(RULES_PATH_VARIABLE) or RULES_PATH)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    numbers: dict[str, DialledNumber] = {}
    for n, entry in enumerate(data.get("numbers") or [], 1):
        where = f"{path.name}: number {n}"
        channel = _rule_channel(where, entry)
        if set(entry) != {"number", "channel", "label"}:
            raise ChannelRulesError(f"{where}: a number has a number, a channel and a label")
        number = normalise_phone(entry["number"])
        if number is None:
            raise ChannelRulesError(f"{where}: {entry['number']!r} is not a phone number")
        label = entry["label"]
        if not isinstance(label, str) or not label.strip():
            raise ChannelRulesError(f"{where}: the label says where the number stands")
        if number in numbers:
            first = list(numbers).index(number) + 1
            raise ChannelRulesError(f"{where}: {number} is already number {first}")
        numbers[number] = DialledNumber(number, channel, label.strip())
    return numbers


@cache
def _numbers() -> dict[str, DialledNumber]:
    return load_numbers()


def dialled_e164(number: str | int | None) -> str | None:
    """A number dialled, in E.164, or None when it is no phone. Call tracking writes numbers
    as bare digits with the country code (UIS: ``74951234567``), so digits that are no phone
    as they stand are read as international."""
    found = normalise_phone(number)
    if found is None and number is not None:
        digits = re.sub(r"\D", "", str(number))
        found = normalise_phone("+" + digits) if digits else None
    return found


def dialled_number(number: str | int | None) -> DialledNumber | None:
    """The clinic's number a call was made to, in any spelling: its channel and label, or
    None when the map does not have it (see :func:`dialled_e164`)."""
    return _numbers().get(dialled_e164(number) or "")


def _call_sources() -> tuple[str, ...]:
    return tuple(sorted(s.name for s in load_config().lead_sources if s.kind in CALL_SOURCE_KINDS))


@cache
def _rules() -> tuple[tuple[UtmRule, ...], tuple[ReferrerRule, ...]]:
    # Read on first use, not at import: the config imports this module at DAG parse time,
    # and a mistake in the marketer's file must stop the report build only.
    return load_rules()


def _source_channels() -> dict[str, str]:
    return load_config().source_channels()


def _domain_pattern(domains: tuple[str, ...]) -> str:
    """A regex (valid in Python and PostgreSQL) matching the domains and their subdomains."""
    alternatives = []
    for domain in domains:
        if domain.endswith(".*"):
            alternatives.append(re.escape(domain[:-2]) + r"(\.[a-z]{2,3}){1,2}")
        else:
            alternatives.append(re.escape(domain))
    return r"(^|\.)(" + "|".join(alternatives) + r")$"


@cache
def _compiled(domains: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(_domain_pattern(domains))


def _clean(value: str | None) -> str:
    return (value or "").strip(" ").lower()


def classify(
    source: str | None,
    utm_source: str | None,
    utm_medium: str | None,
    referrer_host: str | None,
    dialled: str | None = None,
) -> str:
    """The channel of one lead (see the module docstring for the order of decision);
    ``dialled``: the number a call lead was made to."""
    if _clean(source) in _call_sources() and dialled is not None:
        known = dialled_number(dialled)
        if known is not None:
            return known.channel
    fixed = _source_channels().get(_clean(source))
    if fixed is not None:
        return fixed
    tags = {"utm_source": _clean(utm_source), "utm_medium": _clean(utm_medium)}
    if tags["utm_source"] or tags["utm_medium"]:
        for utm_rule in _rules()[0]:
            if tags[utm_rule.tag] in utm_rule.values:
                return utm_rule.channel
        return UTM_FALLBACK
    host = _clean(referrer_host)
    if host:
        for referrer_rule in _rules()[1]:
            if _compiled(referrer_rule.domains).search(host):
                return referrer_rule.channel
        return REFERRER_FALLBACK
    return NOTHING_KNOWN


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(expression: str, values: tuple[str, ...]) -> str:
    return f"{expression} in ({', '.join(_quoted(v) for v in values)})"


def _digit_spellings(number: str) -> tuple[str, ...]:
    """The digits of an E.164 number as call tracking may send them: a Russian number
    also with 8 or without the country code."""
    digits = number.removeprefix("+")
    if number.startswith("+7") and len(digits) == 11:
        return (digits, "8" + digits[1:], digits[1:])
    return (digits,)


def is_call_sql(alias: str = "l") -> str:
    """SQL: the lead of ``alias`` (with ``source`` and ``raw``) is a call."""
    sources = _call_sources()
    if not sources:
        return "false"
    return f"({_in_list(f'{alias}.source', sources)} and {alias}.raw ? {_quoted(CALL_MARK)})"


def channel_sql(alias: str = "l") -> str:
    """The rules as one SQL ``CASE`` over the columns ``source, utm_source, utm_medium,
    referrer_host, raw`` of the table aliased ``alias``."""

    def clean(column: str) -> str:
        return f"lower(btrim(coalesce({alias}.{column}, '')))"

    utm_rules, referrer_rules = _rules()
    utm_cases = "\n".join(
        f"            when {_in_list(clean(r.tag), r.values)} then {_quoted(r.channel)}"
        for r in utm_rules
    )
    referrer_cases = "\n".join(
        f"            when {clean('referrer_host')} ~ {_quoted(_domain_pattern(r.domains))}"
        f" then {_quoted(r.channel)}"
        for r in referrer_rules
    )
    by_channel: dict[str, list[str]] = {}
    for source, channel in sorted(_source_channels().items()):
        by_channel.setdefault(channel, []).append(source)
    source_cases = "".join(
        f"\n        when {_in_list(clean('source'), tuple(sources))} then {_quoted(channel)}"
        for channel, sources in by_channel.items()
    )
    dialled = (
        f"regexp_replace(coalesce({alias}.raw ->> {_quoted(DIALLED_FIELD)}, ''), '\\D', '', 'g')"
    )
    number_cases = "".join(
        f"\n        when {is_call_sql(alias)} and "
        f"{_in_list(dialled, _digit_spellings(n.number))} then {_quoted(n.channel)}"
        for n in _numbers().values()
    )
    return f"""case{number_cases}{source_cases}
        when {clean("utm_source")} <> '' or {clean("utm_medium")} <> '' then case
{utm_cases}
            else {_quoted(UTM_FALLBACK)} end
        when {clean("referrer_host")} <> '' then case
{referrer_cases}
            else {_quoted(REFERRER_FALLBACK)} end
        else {_quoted(NOTHING_KNOWN)}
    end"""
