"""The inbox's queries: open leads with filters and search, and what the front desk does.

Reads go through the view ``integration.open_leads`` (migration 0006), so the page and any
other tool of the clinic see the same columns, plus each lead's escalation (0014). Each
action is one UPDATE guarded by the lead's current status, committed at once: PostgreSQL's
row lock serialises two admins acting on one lead at once, and the second one's guard no
longer matches, so it is told who got there first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from ident_hooks.leads.normalise import normalise_phone

LIST_LIMIT = 200  # more open leads than this is a backlog; the page says how many in all
COMMENT_MAX_CHARS = 1000
Outcome = Literal["done", "spam"]

_NON_DIGITS = re.compile(r"\D+")
_LIKE_SPECIAL = re.compile(r"([\\%_])")


@dataclass(frozen=True)
class LeadFilter:
    """What the admin narrowed the list to; None or empty means "any"."""

    branch_id: str | None = None
    source: str | None = None
    search: str | None = None


@dataclass(frozen=True)
class SearchTerms:
    """LIKE patterns for the phone's digits, or for the name when the text has no digits."""

    phone_patterns: tuple[str, ...] = ()
    name_pattern: str | None = None


def search_terms(text: str | None) -> SearchTerms:
    """Turn what the admin typed into patterns.

    Any common way of writing a phone finds it, in full or in part: ``8 (916) 123-45-67``,
    ``+7 916 1234567``, ``916-123``. Stored numbers are E.164 (``+79161234567``), so a
    leading 8 (the Russian trunk prefix) is also tried as 7. Text without digits searches
    names.
    """
    text = (text or "").strip()
    if not text:
        return SearchTerms()
    digits = _NON_DIGITS.sub("", text)
    if not digits:
        return SearchTerms(name_pattern="%" + _LIKE_SPECIAL.sub(r"\\\1", text) + "%")
    candidates = [digits]
    if digits.startswith("8"):
        candidates.append("7" + digits[1:])
    full_number = normalise_phone(text)
    if full_number:
        candidates.append(full_number.removeprefix("+"))
    return SearchTerms(phone_patterns=tuple(f"%{d}%" for d in dict.fromkeys(candidates)))


# With each lead's escalation (integration.lead_escalations, written by the
# integration_health DAG when nobody took it in time): when, and to which front desk.
_LIST_OPEN_LEADS = """
select o.*, e.escalated_at, e.desk as escalated_desk, count(*) over () as total
  from integration.open_leads o
  left join integration.lead_escalations e on e.lead_id = o.lead_id
 where (%(branch_id)s::text is null or o.branch_id = %(branch_id)s)
   and (%(source)s::text is null or o.source = %(source)s)
   and (%(phone_patterns)s::text[] is null
        or regexp_replace(coalesce(o.phone_e164, o.phone_raw, ''), '\\D', '', 'g')
           like any (%(phone_patterns)s))
   and (%(name_pattern)s::text is null or o.name ilike %(name_pattern)s)
 order by o.created_at desc, o.lead_id desc
 limit %(limit)s
"""


def list_open_leads(
    conn: psycopg.Connection, lead_filter: LeadFilter, limit: int = LIST_LIMIT
) -> tuple[list[dict[str, Any]], int]:
    """Open leads matching the filter, newest first, and how many match in all."""
    terms = search_terms(lead_filter.search)
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            _LIST_OPEN_LEADS,
            {
                "branch_id": lead_filter.branch_id or None,
                "source": lead_filter.source or None,
                "phone_patterns": list(terms.phone_patterns) or None,
                "name_pattern": terms.name_pattern,
                "limit": limit,
            },
        ).fetchall()
    total = rows[0].pop("total") if rows else 0
    for row in rows[1:]:
        del row["total"]
    return rows, total


@dataclass(frozen=True)
class Option:
    value: str
    label: str


def branch_options(conn: psycopg.Connection) -> list[Option]:
    """The clinic's branches, plus any branch id open leads carry that the clinic lacks."""
    rows = conn.execute(
        """
        select branch_id, name from clinic.branches
        union
        select distinct branch_id, branch_id from integration.open_leads
         where branch_id is not null
           and not exists (select from clinic.branches b where b.branch_id = open_leads.branch_id)
        order by 2, 1
        """
    ).fetchall()
    return [Option(value, label) for value, label in rows]


def source_options(conn: psycopg.Connection, configured: Iterable[str]) -> list[Option]:
    """The configured lead sources and any other source open leads came from, labelled."""
    rows = conn.execute(
        """
        select source, integration.lead_source_label(source)
          from (select unnest(%s::text[]) union select source from integration.open_leads)
               as sources (source)
         order by 2, 1
        """,
        (list(configured),),
    ).fetchall()
    return [Option(value, label) for value, label in rows]


@dataclass(frozen=True)
class LeadState:
    """Where a lead stands after an action, or why the action could not happen."""

    lead_id: int
    status: str
    taken_by: str | None
    taken_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None


class LeadNotFound(LookupError):
    """No lead has this id."""


class LeadUnavailable(Exception):
    """Another admin has the lead, or it is closed already; ``state`` says by whom."""

    def __init__(self, state: LeadState) -> None:
        super().__init__(f"lead {state.lead_id} is {state.status}")
        self.state = state


_STATE_COLUMNS = "lead_id, status, taken_by, taken_at, closed_by, closed_at"


def _current_state(conn: psycopg.Connection, lead_id: int) -> LeadState:
    row = conn.execute(
        f"select {_STATE_COLUMNS} from integration.leads where lead_id = %s", (lead_id,)
    ).fetchone()
    if row is None:
        raise LeadNotFound(lead_id)
    return LeadState(*row)


def take_lead(conn: psycopg.Connection, lead_id: int, user: str) -> LeadState:
    """Mark a new lead as being handled by ``user``; commits.

    Taking a lead one already has is harmless (a double click). Anything else that is not
    new raises ``LeadUnavailable`` with who has it.
    """
    row = conn.execute(
        f"""
        update integration.leads
           set status = 'in_progress', taken_by = %s, taken_at = now()
         where lead_id = %s and status = 'new'
        returning {_STATE_COLUMNS}
        """,
        (user, lead_id),
    ).fetchone()
    conn.commit()
    if row is not None:
        return LeadState(*row)
    state = _current_state(conn, lead_id)
    if state.status == "in_progress" and state.taken_by == user:
        return state
    raise LeadUnavailable(state)


def close_lead(
    conn: psycopg.Connection,
    lead_id: int,
    user: str,
    outcome: Outcome,
    comment: str | None = None,
) -> LeadState:
    """Close an open lead as handled (``done``) or as spam or a duplicate; commits.

    A lead nobody took is taken by ``user`` at the same moment, so its response time is
    recorded too. A lead closed already raises ``LeadUnavailable``.
    """
    if outcome not in ("done", "spam"):
        raise ValueError(f"unknown outcome {outcome!r}")
    comment = (comment or "").strip()[:COMMENT_MAX_CHARS] or None
    row = conn.execute(
        f"""
        update integration.leads
           set status = %(outcome)s, closed_by = %(user)s, closed_at = now(),
               close_comment = %(comment)s,
               taken_by = coalesce(taken_by, %(user)s), taken_at = coalesce(taken_at, now())
         where lead_id = %(lead_id)s and status in ('new', 'in_progress')
        returning {_STATE_COLUMNS}
        """,
        {"outcome": outcome, "user": user, "comment": comment, "lead_id": lead_id},
    ).fetchone()
    conn.commit()
    if row is None:
        raise LeadUnavailable(_current_state(conn, lead_id))
    return LeadState(*row)
