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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from ident_hooks.inbox import patients
from ident_hooks.leads.normalise import normalise_phone
from ident_hooks.reports import channels
from ident_hooks.reports.channel_codes import CHANNEL_LABELS
from ident_hooks.reports.channels import DIALLED_FIELD

CONFIG_SECTION = "ident_inbox"  # [ident_inbox] in airflow.cfg, or AIRFLOW__IDENT_INBOX__*
LIST_LIMIT = 200  # more open rows than this is a backlog; the page says how many in all
# Leads of one person this close together are one conversation ([ident_inbox]
# conversation_window_hours).
CONVERSATION_WINDOW = timedelta(hours=24)
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


# Every open lead with what grouping needs: its escalation (integration.lead_escalations,
# written by the integration_health DAG when nobody took it in time), the front desk's
# choice of card, the card of a single certain match, and whether it passes the filter;
# and whether it is a call (the reports' definition), with the number dialled and how long
# ago it reached us (our clock, not call tracking's).
_OPEN_LEADS = """
select o.*, e.escalated_at, e.desk as escalated_desk,
       {is_call} as is_call, l.raw ->> '{dialled_field}' as dialled_raw,
       round(extract(epoch from now() - o.loaded_at))::bigint as received_seconds,
       c.lead_id is not null as has_choice, c.patient_id as chosen_patient_id,
       c.chosen_by, c.chosen_at,
       (select min(m.patient_id) from integration.lead_patient_matches m
         where m.lead_id = o.lead_id and m.grade = 'certain'
        having count(*) = 1) as certain_patient_id,
       (%(branch_id)s::text is null or o.branch_id = %(branch_id)s)
       and (%(source)s::text is null or o.source = %(source)s)
       and (%(phone_patterns)s::text[] is null
            or regexp_replace(coalesce(o.phone_e164, o.phone_raw, ''), '\\D', '', 'g')
               like any (%(phone_patterns)s))
       and (%(name_pattern)s::text is null or o.name ilike %(name_pattern)s) as wanted
  from integration.open_leads o
  join integration.leads l on l.lead_id = o.lead_id
  left join integration.lead_escalations e on e.lead_id = o.lead_id
  left join integration.lead_patient_choices c on c.lead_id = o.lead_id
 order by o.created_at, o.lead_id
"""

# Columns used for grouping and the patient, not shown as they are.
_GROUPING_COLUMNS = (
    "has_choice",
    "chosen_patient_id",
    "chosen_by",
    "chosen_at",
    "certain_patient_id",
    "wanted",
    "is_call",
    "dialled_raw",
    "received_seconds",
)
# What each lead of a conversation adds to its list of sources.
_SOURCE_COLUMNS = (
    "lead_id",
    "status",
    "source",
    "source_label",
    "created_at",
    "taken_by",
    "name",
    "comment",
    "form_name",
    "doctor_name",
    "requested_start",
    "requested_end",
    "campaign",
)


def _person_keys(lead: dict[str, Any]) -> list[tuple[str, str]]:
    """What says two leads are one person: the same E.164 phone, or the same card (the one
    the front desk chose, else the only certain match). A name alone never does."""
    keys = []
    if lead["phone_e164"]:
        keys.append(("phone", lead["phone_e164"]))
    card = lead["chosen_patient_id"] if lead["has_choice"] else lead["certain_patient_id"]
    if card:
        keys.append(("card", card))
    return keys


def group_conversations(
    leads: list[dict[str, Any]], window: timedelta
) -> list[list[dict[str, Any]]]:
    """Open leads (oldest first) grouped by person: a lead joins the conversation of an
    earlier lead of the same phone or card that came at most ``window`` before it (so a
    person writing every day stays one conversation). Each group is oldest first."""
    parent = list(range(len(leads)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    latest: dict[tuple[str, str], int] = {}  # key -> the index of its newest lead so far
    for index, lead in enumerate(leads):
        for key in _person_keys(lead):
            previous = latest.get(key)
            if (
                previous is not None
                and lead["created_at"] - leads[previous]["created_at"] <= window
            ):
                parent[root(index)] = root(previous)
            latest[key] = index
    groups: dict[int, list[dict[str, Any]]] = {}
    for index, lead in enumerate(leads):
        groups.setdefault(root(index), []).append(lead)
    return list(groups.values())


def _open_lead_groups(
    conn: psycopg.Connection, lead_filter: LeadFilter, window: timedelta
) -> list[list[dict[str, Any]]]:
    terms = search_terms(lead_filter.search)
    query = _OPEN_LEADS.format(is_call=channels.is_call_sql("l"), dialled_field=DIALLED_FIELD)
    with conn.cursor(row_factory=dict_row) as cursor:
        leads = cursor.execute(
            query,
            {
                "branch_id": lead_filter.branch_id or None,
                "source": lead_filter.source or None,
                "phone_patterns": list(terms.phone_patterns) or None,
                "name_pattern": terms.name_pattern,
            },
        ).fetchall()
    return group_conversations(leads, window)


def _conversation(leads: list[dict[str, Any]]) -> dict[str, Any]:
    """One inbox row: the first lead's columns, the state of the whole, and its sources."""
    first = leads[0]
    row = {key: value for key, value in first.items() if key not in _GROUPING_COLUMNS}
    taken = sorted(
        (lead for lead in leads if lead["status"] == "in_progress"),
        key=lambda lead: lead["taken_at"],
    )
    if taken:
        row.update(
            status="in_progress", taken_by=taken[0]["taken_by"], taken_at=taken[0]["taken_at"]
        )
        # The wait ends when the person is answered, and began with their first lead.
        row["waiting_seconds"] = round((taken[0]["taken_at"] - first["created_at"]).total_seconds())
    escalated = [lead for lead in leads if lead["escalated_at"]]
    if escalated:
        earliest = min(escalated, key=lambda lead: lead["escalated_at"])
        row.update(escalated_at=earliest["escalated_at"], escalated_desk=earliest["escalated_desk"])
    for column in ("name", "phone_e164", "phone_raw", "email"):
        row[column] = next((lead[column] for lead in leads if lead[column]), None)
    row["lead_ids"] = [lead["lead_id"] for lead in leads]
    row["newest_lead_id"] = max(row["lead_ids"])
    row["sources"] = [
        {**{column: lead[column] for column in _SOURCE_COLUMNS}, "call": _call(lead)}
        for lead in leads
    ]
    calls = [lead for lead in leads if lead["is_call"]]
    row["call"] = _call(calls[-1]) if calls else None
    row["call_seconds"] = calls[-1]["received_seconds"] if calls else None
    return row


def _call(lead: dict[str, Any]) -> dict[str, Any] | None:
    """A call's number dialled and where that number stands (the clinic's numbers map), or
    None when the lead is no call."""
    if not lead["is_call"]:
        return None
    found = channels.dialled_number(lead["dialled_raw"])
    return {
        "dialled_number": channels.dialled_e164(lead["dialled_raw"]) or lead["dialled_raw"],
        "label": found.label if found else None,
        "channel": found.channel if found else None,
        "channel_label": CHANNEL_LABELS.get(found.channel) if found else None,
    }


def list_open_leads(
    conn: psycopg.Connection,
    lead_filter: LeadFilter,
    limit: int = LIST_LIMIT,
    window: timedelta = CONVERSATION_WINDOW,
) -> tuple[list[dict[str, Any]], int]:
    """Open conversations with a lead matching the filter, the one with the newest lead
    first, each with its patient; and how many match in all."""
    groups = [
        group
        for group in _open_lead_groups(conn, lead_filter, window)
        if any(lead["wanted"] for lead in group)
    ]
    groups.sort(
        key=lambda group: max((lead["created_at"], lead["lead_id"]) for lead in group), reverse=True
    )
    shown = groups[:limit]
    rows = [_conversation(group) for group in shown]
    patients.attach(conn, rows, shown)
    return rows, len(groups)


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
    lead_ids: tuple[int, ...] = ()  # the conversation's leads the action covered


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


def open_conversations(
    conn: psycopg.Connection, window: timedelta = CONVERSATION_WINDOW
) -> list[list[dict[str, Any]]]:
    """Every open conversation (its leads, oldest first), as the inbox groups them."""
    return _open_lead_groups(conn, LeadFilter(), window)


def configured_conversation_window() -> timedelta:
    """Leads of one person this close together are one row: ``[ident_inbox]
    conversation_window_hours`` in Airflow's configuration (default 24)."""
    from airflow.configuration import conf

    hours = conf.getfloat(
        CONFIG_SECTION,
        "conversation_window_hours",
        fallback=CONVERSATION_WINDOW.total_seconds() / 3600,
    )
    return timedelta(hours=max(0.0, hours))


def conversation_lead_ids(
    conn: psycopg.Connection, lead_id: int, window: timedelta = CONVERSATION_WINDOW
) -> list[int]:
    """The open leads of ``lead_id``'s conversation, oldest first (``[lead_id]`` when the
    lead is not open: it is acted on alone, as before conversations)."""
    for group in _open_lead_groups(conn, LeadFilter(), window):
        ids = [lead["lead_id"] for lead in group]
        if lead_id in ids:
            return ids
    return [lead_id]


def _lock_conversation(
    conn: psycopg.Connection, lead_id: int, window: timedelta
) -> tuple[LeadState, list[LeadState]]:
    """Lock the conversation's leads (in id order: two admins never deadlock) and read them
    as committed: the lead acted on, and all of them. Raises ``LeadNotFound``."""
    ids = conversation_lead_ids(conn, lead_id, window)
    states = [
        LeadState(*row)
        for row in conn.execute(
            f"""
            select {_STATE_COLUMNS} from integration.leads
             where lead_id = any(%s) order by lead_id for update
            """,
            (ids,),
        )
    ]
    anchor = next((state for state in states if state.lead_id == lead_id), None)
    if anchor is None:
        conn.rollback()
        raise LeadNotFound(lead_id)
    return anchor, states


def _refuse(conn: psycopg.Connection, state: LeadState) -> LeadUnavailable:
    conn.rollback()
    return LeadUnavailable(state)


def take_lead(
    conn: psycopg.Connection, lead_id: int, user: str, window: timedelta = CONVERSATION_WINDOW
) -> LeadState:
    """Mark the new leads of ``lead_id``'s conversation as handled by ``user``; commits.

    All or nothing, in one transaction: when another admin has any lead of it, or the lead
    is closed, ``LeadUnavailable`` says who. Taking a conversation one already has is
    harmless (a double click) and takes any lead that joined it since.
    """
    anchor, states = _lock_conversation(conn, lead_id, window)
    holder = next((s for s in states if s.status == "in_progress" and s.taken_by != user), None)
    if holder is not None:
        raise _refuse(conn, holder)
    if anchor.status not in ("new", "in_progress"):
        raise _refuse(conn, anchor)
    conn.execute(
        """
        update integration.leads
           set status = 'in_progress', taken_by = %s, taken_at = now()
         where lead_id = any(%s) and status = 'new'
        """,
        (user, [state.lead_id for state in states]),
    )
    taken = _current_state(conn, lead_id)
    conn.commit()
    return replace(taken, lead_ids=tuple(state.lead_id for state in states))


def close_lead(
    conn: psycopg.Connection,
    lead_id: int,
    user: str,
    outcome: Outcome,
    comment: str | None = None,
    window: timedelta = CONVERSATION_WINDOW,
) -> LeadState:
    """Close the open leads of ``lead_id``'s conversation as handled (``done``) or as spam
    or a duplicate, in one transaction; commits.

    A lead nobody took is taken by ``user`` at the same moment, so its response time is
    recorded too. A lead closed already raises ``LeadUnavailable``.
    """
    if outcome not in ("done", "spam"):
        raise ValueError(f"unknown outcome {outcome!r}")
    comment = (comment or "").strip()[:COMMENT_MAX_CHARS] or None
    anchor, states = _lock_conversation(conn, lead_id, window)
    if anchor.status not in ("new", "in_progress"):
        raise _refuse(conn, anchor)
    open_ids = [s.lead_id for s in states if s.status in ("new", "in_progress")]
    conn.execute(
        """
        update integration.leads
           set status = %(outcome)s, closed_by = %(user)s, closed_at = now(),
               close_comment = %(comment)s,
               taken_by = coalesce(taken_by, %(user)s), taken_at = coalesce(taken_at, now())
         where lead_id = any(%(lead_ids)s) and status in ('new', 'in_progress')
        """,
        {"outcome": outcome, "user": user, "comment": comment, "lead_ids": open_ids},
    )
    closed = _current_state(conn, lead_id)
    conn.commit()
    return replace(closed, lead_ids=tuple(open_ids))


class UnknownPatient(LookupError):
    """No patient card has this id."""


def choose_patient(
    conn: psycopg.Connection,
    lead_id: int,
    patient_id: str | None,
    user: str,
    window: timedelta = CONVERSATION_WINDOW,
) -> LeadState:
    """Record that the person of ``lead_id``'s conversation is card ``patient_id`` (None: a
    new patient) for every lead of it; commits. Kept whatever matching finds later."""
    if (
        patient_id is not None
        and not conn.execute(
            "select 1 from clinic.patients where patient_id = %s", (patient_id,)
        ).fetchone()
    ):
        raise UnknownPatient(patient_id)
    anchor, states = _lock_conversation(conn, lead_id, window)
    if anchor.status not in ("new", "in_progress"):
        raise _refuse(conn, anchor)
    lead_ids = [state.lead_id for state in states]
    conn.execute(
        """
        insert into integration.lead_patient_choices (lead_id, patient_id, chosen_by)
        select unnest(%(lead_ids)s::bigint[]), %(patient_id)s, %(user)s
        on conflict (lead_id) do update
           set patient_id = excluded.patient_id, chosen_by = excluded.chosen_by,
               chosen_at = now()
        """,
        {"lead_ids": lead_ids, "patient_id": patient_id, "user": user},
    )
    conn.commit()
    return replace(anchor, lead_ids=tuple(lead_ids))
