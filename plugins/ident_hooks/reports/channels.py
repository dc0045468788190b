"""The one place for the marketing-channel rules: which channel a lead came through.

The rules are data (the tables below). :func:`classify` applies them in Python (tests,
docs, one-off checks) and :func:`channel_sql` renders the same tables as one SQL ``CASE``
expression that the report build runs over the leads table. A test checks both agree.

Order of decision, first match wins:

1. The lead was loaded from an aggregator's own booking system (``source`` in
   :data:`AGGREGATOR_SOURCES`): ``aggregator``, whatever tags it carries — the booking was
   made on the aggregator; its tags say how the patient reached the aggregator.
2. The lead has ``utm_source`` or ``utm_medium`` (a lone ``utm_campaign`` does not count):
   :data:`UTM_RULES` in order, else ``other``.
3. The lead has a referrer host: :data:`REFERRER_RULES` in order (a domain matches itself
   and its subdomains; ``name.*`` matches any top-level domain, e.g. ``google.com.tr``),
   else ``referral``.
4. Nothing known: ``direct``.

Values are compared trimmed of spaces and lowercased. Changing these tables changes the
build's definitions hash, so the next run rebuilds every report table by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

# Channel codes (the values of the `channel` columns) and what they mean, for docs/comments.
CHANNELS: dict[str, str] = {
    "aggregator": "агрегаторы: ПроДокторов, НаПоправку, СберЗдоровье, DocDoc, 32top",
    "paid": "платная реклама: utm_medium cpc, ppc, cpm, cpa, display, retargeting …",
    "social": "соцсети и мессенджеры: ВКонтакте, Одноклассники, Telegram, Дзен, YouTube …",
    "email": "e-mail-рассылки",
    "organic": "поисковики без рекламы: Яндекс, Google, Bing, Поиск Mail.ru …",
    "referral": "переход с другого сайта",
    "other": "есть UTM-метки, но ни одно правило не подошло",
    "direct": "нет ни UTM-меток, ни сайта-источника (набрали адрес, звонок без метки)",
}

# Lead sources (integration.leads.source) that are aggregators' booking systems.
AGGREGATOR_SOURCES: tuple[str, ...] = ("napopravku", "32top", "prodoctorov", "sberzdorovie")

AGGREGATOR_NAMES = ("prodoctorov", "napopravku", "sberzdorovie", "docdoc", "32top")
AGGREGATOR_DOMAINS = (
    "prodoctorov.ru",
    "napopravku.ru",
    "sberzdorovie.ru",
    "docdoc.ru",
    "32top.ru",
)
SOCIAL_NAMES = (
    "vk",
    "vkontakte",
    "ok",
    "odnoklassniki",
    "telegram",
    "tg",
    "dzen",
    "zen",
    "youtube",
    "instagram",
    "facebook",
    "fb",
    "tiktok",
    "whatsapp",
)
SOCIAL_DOMAINS = (
    "vk.com",
    "vk.ru",
    "ok.ru",
    "t.me",
    "telegram.org",
    "dzen.ru",
    "zen.yandex.ru",
    "youtube.com",
    "youtu.be",
    "instagram.com",
    "facebook.com",
    "tiktok.com",
    "wa.me",
)
SEARCH_DOMAINS = (
    "yandex.*",
    "ya.ru",
    "google.*",
    "bing.com",
    "go.mail.ru",
    "duckduckgo.com",
    "nova.rambler.ru",
    "search.yahoo.com",
)


@dataclass(frozen=True)
class UtmRule:
    channel: str
    tag: str  # "utm_medium" or "utm_source"
    values: tuple[str, ...]


@dataclass(frozen=True)
class ReferrerRule:
    channel: str
    domains: tuple[str, ...]


UTM_RULES: tuple[UtmRule, ...] = (
    UtmRule(
        "paid",
        "utm_medium",
        (
            "cpc",
            "ppc",
            "cpm",
            "cpa",
            "cpv",
            "paid",
            "paid_social",
            "display",
            "banner",
            "retargeting",
        ),
    ),
    UtmRule("aggregator", "utm_source", AGGREGATOR_NAMES),
    UtmRule("social", "utm_medium", ("social", "smm", "social_media", "social-network")),
    UtmRule("social", "utm_source", SOCIAL_NAMES),
    UtmRule("email", "utm_medium", ("email", "e-mail", "newsletter", "mailing")),
    UtmRule("organic", "utm_medium", ("organic",)),
    UtmRule("referral", "utm_medium", ("referral", "ref", "partner")),
)
UTM_FALLBACK = "other"

REFERRER_RULES: tuple[ReferrerRule, ...] = (
    ReferrerRule("aggregator", AGGREGATOR_DOMAINS),
    # Before search: zen.yandex.ru is social, the rest of yandex.* is search.
    ReferrerRule("social", SOCIAL_DOMAINS),
    ReferrerRule("organic", SEARCH_DOMAINS),
)
REFERRER_FALLBACK = "referral"
NOTHING_KNOWN = "direct"

_SAFE_VALUE = re.compile(r"^[a-z0-9][a-z0-9._*-]*$")


def _check_tables() -> None:
    """The rule values are rendered into SQL as literals: keep them plain."""
    values = [*AGGREGATOR_SOURCES]
    for rule in (*UTM_RULES, *REFERRER_RULES):
        if rule.channel not in CHANNELS:
            raise ValueError(f"unknown channel {rule.channel!r} in {rule}")
        values += rule.values if isinstance(rule, UtmRule) else rule.domains
    if any(rule.tag not in ("utm_medium", "utm_source") for rule in UTM_RULES):
        raise ValueError("UTM rules look at utm_medium or utm_source only")
    bad = [value for value in values if not _SAFE_VALUE.match(value)]
    if bad:
        raise ValueError(f"channel rule values must be plain lowercase words: {bad}")


_check_tables()


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
) -> str:
    """The channel of one lead (see the module docstring for the order of decision)."""
    if _clean(source) in AGGREGATOR_SOURCES:
        return "aggregator"
    tags = {"utm_source": _clean(utm_source), "utm_medium": _clean(utm_medium)}
    if tags["utm_source"] or tags["utm_medium"]:
        for utm_rule in UTM_RULES:
            if tags[utm_rule.tag] in utm_rule.values:
                return utm_rule.channel
        return UTM_FALLBACK
    host = _clean(referrer_host)
    if host:
        for referrer_rule in REFERRER_RULES:
            if _compiled(referrer_rule.domains).search(host):
                return referrer_rule.channel
        return REFERRER_FALLBACK
    return NOTHING_KNOWN


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(expression: str, values: tuple[str, ...]) -> str:
    return f"{expression} in ({', '.join(_quoted(v) for v in values)})"


def channel_sql(alias: str = "l") -> str:
    """The rules as one SQL ``CASE`` over the columns ``source, utm_source, utm_medium,
    referrer_host`` of the table aliased ``alias``."""

    def clean(column: str) -> str:
        return f"lower(btrim(coalesce({alias}.{column}, '')))"

    utm_cases = "\n".join(
        f"            when {_in_list(clean(r.tag), r.values)} then {_quoted(r.channel)}"
        for r in UTM_RULES
    )
    referrer_cases = "\n".join(
        f"            when {clean('referrer_host')} ~ {_quoted(_domain_pattern(r.domains))}"
        f" then {_quoted(r.channel)}"
        for r in REFERRER_RULES
    )
    return f"""case
        when {_in_list(clean("source"), AGGREGATOR_SOURCES)} then 'aggregator'
        when {clean("utm_source")} <> '' or {clean("utm_medium")} <> '' then case
{utm_cases}
            else {_quoted(UTM_FALLBACK)} end
        when {clean("referrer_host")} <> '' then case
{referrer_cases}
            else {_quoted(REFERRER_FALLBACK)} end
        else {_quoted(NOTHING_KNOWN)}
    end"""
