"""The intake service: leads that services can only push (Tilda, site forms, webhooks).

A small ASGI app of its own (``python -m ident_hooks.intake --port N``), run beside Airflow,
not inside its api-server, so that it alone faces the internet. Each authenticated request
is committed to the clinic database — raw body in ``integration.intake_requests``, the lead
through the same normaliser and store as pulled leads, or a reject with its reason — before
it is answered 2xx; with the database away it answers 503 so that the sender retries. The
leads it took in can be pulled back with IDENT ``GetTickets``. Setting it up:
docs/integrations.md, "Push sources: Tilda and site webhooks".
"""
