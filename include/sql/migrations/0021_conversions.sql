-- Closing the marketing loop (issue 19): what a visit earned, and which conversions have
-- gone to which ad system.

-- The clinic contract gains the visit's amount: what the patient paid for it, in the
-- clinic's currency. Optional: without it conversions go without revenue and the
-- reports show no ROMI.
alter table clinic.appointments
    add column amount numeric(12, 2) constraint appointment_amount_not_negative check (amount >= 0);
comment on column clinic.appointments.amount is
    'Сумма приёма (выручка) в валюте клиники; пусто — неизвестна.';

-- One row per conversion a sink has delivered: a conversion goes once per sink, so a
-- re-run (or a run after a failed one) sends only what has no row here. Written in the
-- transaction that follows the service's acceptance of the upload that carried it.
create table integration.conversions_sent (
    sink           text not null,    -- the conversion sink's name in include/integrations.yaml
    event          text not null constraint conversion_event_known
                   check (event in ('lead', 'first_visit')),
    lead_id        bigint not null,  -- integration.leads.lead_id (kept if the lead is deleted)
    appointment_id text,             -- the visit of a first_visit
    occurred_at    timestamptz not null,  -- the conversion's time as sent
    amount         numeric(12, 2),   -- the revenue sent with it
    channel        text not null,    -- how it went: the service's upload kind
    upload_id      text,             -- the service's id of the upload, when it gives one
    sent_at        timestamptz not null default now(),
    primary key (sink, event, lead_id)
);
comment on table integration.conversions_sent is
    'Конверсии, переданные в рекламные системы: каждая уходит в систему один раз.';

-- Each upload as the service last reported it: uploads are processed for hours, and what
-- the service could not link is shown on the status page.
create table integration.conversion_uploads (
    sink                    text not null,
    upload_id               text not null,
    channel                 text not null,
    uploaded_at             timestamptz not null default now(),
    rows_sent               int not null check (rows_sent >= 0),
    status                  text,          -- the service's own status word
    finished                boolean not null default false,
    line_quantity           int,           -- rows the service accepted
    linked_quantity         int,           -- rows linked to a visitor
    goal_not_found_quantity int,           -- rows whose goal the counter does not have
    user_not_found_quantity int,           -- rows whose visitor the counter does not know
    checked_at              timestamptz,
    primary key (sink, upload_id)
);
create index conversion_uploads_unfinished on integration.conversion_uploads (sink)
    where not finished;
comment on table integration.conversion_uploads is
    'Загрузки конверсий и их статус в рекламной системе (сколько строк связано с визитами).';
