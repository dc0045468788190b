"""Marketing reports: the ``report.*`` tables marketers query, rebuilt as leads arrive.

* :mod:`ident_hooks.reports.channel_codes` — the channels a lead is counted in;
* :mod:`ident_hooks.reports.channels` — the channel rules (one table, Python and SQL);
* :mod:`ident_hooks.reports.appointments` — appointments with normalised phones, and
  which of them changed since the last build (conversions);
* :mod:`ident_hooks.reports.facts` — one row per lead with everything the reports
  count, recomputed only for the leads a change can affect;
* :mod:`ident_hooks.reports.demand` — doctors' free slots per week, by the slot engine;
* :mod:`ident_hooks.reports.tables` — the report tables, rebuilt for the touched days,
  campaigns and weeks;
* :mod:`ident_hooks.reports.build` — one build run (incremental or full), its state and
  a command line;
* :mod:`ident_hooks.reports.weekly` — weekly chart series read from the report tables.
"""
