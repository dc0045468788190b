-- Requests pushed to the intake service (python -m ident_hooks.intake): Tilda form
-- webhooks and the JSON webhook of clinic sites. Every authenticated request is kept here,
-- raw body included, in the same transaction as the lead (or the reject) it became, and
-- only then answered 2xx; so a lead a sender was told we took is always in the database.
-- Requests with a wrong secret are answered 401/403 and not kept.

create table integration.intake_requests (
    request_id   bigint generated always as identity primary key,
    source       text not null,                -- the configured instance (integrations.yaml)
    kind         text not null,                -- a push kind of ident_hooks.registry (tilda, webhook, ...)
    received_at  timestamptz not null default now(),
    content_type text,
    body         bytea not null,               -- as received; at most the size limit
    body_bytes   bigint not null,              -- the size sent (an oversized body is cut)
    external_id  text,                         -- tranid / the sender's id, when read
    outcome      text not null
                 constraint intake_outcome_known
                 check (outcome in ('stored', 'repeated', 'test', 'rejected')),
    http_status  int not null,
    reason       text,                         -- why a request was rejected
    -- No foreign key: the request log outlives what is done to the leads (a reload, a purge).
    lead_id      bigint
);
create index intake_requests_received on integration.intake_requests (source, received_at);

comment on table integration.intake_requests is
    'Запросы, присланные в сервис приёма заявок (Tilda, формы сайтов): тело как пришло, '
    'что из него вышло (заявка, повтор, проверка связи, отказ) и ответ отправителю.';
