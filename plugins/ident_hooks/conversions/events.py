"""Which conversions a sink has still to send: the clinic's leads and visits, picked in SQL.

Two events (``ident_hooks.config.CONVERSION_EVENTS``), one set-based query each:

* ``lead`` — every lead of ``integration.leads`` that is not spam, at its ``created_at``.
* ``first_visit`` — a *visit* is a ``clinic.appointments`` row with status ``completed``
  (the clinic contract, README). A visit belongs to the **latest** non-spam lead of its
  phone created at or before it, if it starts within ``visit_window_days`` of that lead;
  the lead's first visit is the earliest visit that belongs to it. So one visit is never
  two conversions of one sink: of two leads of a phone before a visit, only the later one
  converts. Appointments keep phones as typed, so the phones of the completed appointments
  of the period that can matter are normalised here with the leads' own function
  (:func:`ident_hooks.leads.normalise.normalise_phone`) into a temporary table.

Every event is sent at most once per sink (no row in ``integration.conversions_sent``),
never with a time in the future, not older than the sink's ``lookback_days`` or the
service's ``earliest`` linkable time, and not later than the service's ``link_window``
after its lead. A lead whose source is no longer configured still converts (its click ids
and phone are what link it); its ``source_kind`` is None, so a sink that needs the kind
(a UIS deal needs a UIS communication) leaves it alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from ident_hooks.conversions import ConversionEvent
from ident_hooks.leads.normalise import normalise_phone

if TYPE_CHECKING:
    from ident_hooks.config import ConversionSink

_LEAD_COLUMNS = """
       l.lead_id, l.created_at as lead_created_at, l.source, k.kind as source_kind,
       l.external_id, l.phone_e164, l.ym_client_id, l.yclid, l.gclid"""

_LEAD_EVENTS = f"""
select 'lead' as event, l.created_at as occurred_at, {_LEAD_COLUMNS}
  from integration.leads l
  left join unnest(%(sources)s::text[], %(kinds)s::text[]) as k (source, kind)
         on k.source = l.source
 where l.status <> 'spam'
   and l.created_at between %(since)s and %(now)s
   and not exists (select from integration.conversions_sent s
                    where s.sink = %(sink)s and s.event = 'lead' and s.lead_id = l.lead_id)
 order by l.created_at, l.lead_id
"""

# The completed appointments that can be a sent visit or an earlier visit of its lead.
_VISIT_PHONES = """
select distinct patient_phone from clinic.appointments
 where status = 'completed' and patient_phone is not null
   and starts_at between %(visits_from)s and %(now)s
"""

_FIRST_VISIT_EVENTS = f"""
with visits as (
    select a.appointment_id, a.starts_at, a.amount, owner.lead_id
      from clinic.appointments a
      join pg_temp.conversion_visit_phones p on p.patient_phone = a.patient_phone
      cross join lateral (
            select l.lead_id, l.created_at from integration.leads l
             where l.phone_e164 = p.phone_e164 and l.created_at <= a.starts_at
               and l.status <> 'spam'
             order by l.created_at desc, l.lead_id desc
             limit 1) owner
     where a.status = 'completed'
       and a.starts_at between %(visits_from)s and %(now)s
       and a.starts_at <= owner.created_at + %(visit_window)s
), first_visits as (
    select distinct on (lead_id) lead_id, appointment_id, starts_at, amount
      from visits
     order by lead_id, starts_at, appointment_id
)
select 'first_visit' as event, v.starts_at as occurred_at, v.appointment_id, v.amount,
       {_LEAD_COLUMNS}
  from first_visits v
  join integration.leads l on l.lead_id = v.lead_id
  left join unnest(%(sources)s::text[], %(kinds)s::text[]) as k (source, kind)
         on k.source = l.source
 where v.starts_at >= %(since)s
   and v.starts_at - l.created_at <= %(link_window)s
   and not exists (select from integration.conversions_sent s
                    where s.sink = %(sink)s and s.event = 'first_visit'
                      and s.lead_id = l.lead_id)
 order by v.starts_at, l.lead_id
"""


def pending_events(
    conn: psycopg.Connection,
    sink: ConversionSink,
    *,
    source_kinds: Mapping[str, str],
    now: datetime,
    link_window: timedelta,
    earliest: datetime | None,
) -> list[ConversionEvent]:
    """The events of ``sink.events`` not yet sent to ``sink``, oldest first, as of ``now``.

    ``source_kinds`` maps a lead source's name to its kind (the configured lead sources);
    ``link_window`` and ``earliest`` are the service's limits (the connector's
    ``link_window`` and ``earliest_linkable(now)``). Runs in the caller's transaction and
    writes nothing but a temporary table.
    """
    since = now - timedelta(days=sink.lookback_days)
    if earliest is not None:
        since = max(since, earliest)
    if since > now:
        return []
    params: dict[str, Any] = {
        "sink": sink.name,
        "now": now,
        "since": since,
        "link_window": link_window,
        "sources": list(source_kinds),
        "kinds": list(source_kinds.values()),
    }
    events: list[ConversionEvent] = []
    if "lead" in sink.events:
        events.extend(_select(conn, _LEAD_EVENTS, params))
    if "first_visit" in sink.events:
        visit_window = timedelta(days=sink.visit_window_days)
        # A visit sent now started after `since`; the earlier visits of its lead, which make
        # it the lead's first or not, at most one visit window before that.
        params |= {"visit_window": visit_window, "visits_from": since - visit_window}
        _normalise_visit_phones(conn, params)
        events.extend(_select(conn, _FIRST_VISIT_EVENTS, params))
    return events


def _normalise_visit_phones(conn: psycopg.Connection, params: dict[str, Any]) -> None:
    """``pg_temp.conversion_visit_phones``: each phone of the period's visits as typed, with
    its E.164 form (the visits whose phone is no valid number are left out)."""
    conn.execute(
        "create temp table if not exists conversion_visit_phones"
        " (patient_phone text primary key, phone_e164 text not null) on commit drop"
    )
    conn.execute("truncate pg_temp.conversion_visit_phones")
    typed = conn.execute(_VISIT_PHONES, params).fetchall()
    with conn.cursor().copy(
        "copy pg_temp.conversion_visit_phones (patient_phone, phone_e164) from stdin"
    ) as copy:
        for (raw,) in typed:
            phone = normalise_phone(raw)
            if phone is not None:
                copy.write_row((raw, phone))
    conn.execute("analyze pg_temp.conversion_visit_phones")


def _select(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[ConversionEvent]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return [ConversionEvent(**row) for row in cursor.execute(sql, params)]
