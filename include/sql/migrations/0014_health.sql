-- Integration health and alerts (ident_hooks.health, dags/integration_health.py, the status
-- page at /status/): what Airflow said about each DAG run, the alert state of each thing
-- watched, the alerts sent, the leads escalated to their branch's front desk, and the clinic
-- sync's heartbeat.

-- The clinic's practice-management system (or its sync job) writes one row per sync source
-- each time it has synced, e.g.
--   insert into clinic.sync_heartbeat values ('ident', now())
--   on conflict (source) do update set synced_at = excluded.synced_at;
-- A heartbeat older than the configured limit (include/alerts.yaml) means the schedule
-- the aggregators get may offer time that is already taken.
create table clinic.sync_heartbeat (
    source    text primary key,
    synced_at timestamptz not null
);

comment on table clinic.sync_heartbeat is
    'Когда синхронизация клиники (МИС, IDENT) в последний раз записала данные: '
    'одна строка на источник синхронизации.';

-- Every run of this project's DAGs as Airflow reports it to our listener
-- (ident_hooks.health.listener): the scheduler tells when a run ends, the task that failed
-- tells why. A run's error is the last failed task's, with secrets redacted.
create table integration.dag_runs (
    dag_id      text not null,
    run_id      text not null,
    state       text not null default 'running'
                constraint dag_run_state_known check (state in ('running', 'success', 'failed')),
    started_at  timestamptz,
    finished_at timestamptz,
    failed_task text,
    error       text,
    error_at    timestamptz,                  -- when the error was recorded
    recorded_at timestamptz not null default now(),
    primary key (dag_id, run_id)
);
create index dag_runs_recent on integration.dag_runs (dag_id, finished_at desc)
    where state in ('success', 'failed');

comment on table integration.dag_runs is
    'Запуски DAG этого проекта, как о них сообщил Airflow: состояние, время, последняя '
    'ошибка (секреты скрыты).';

-- One row per thing an alert is about: an integration, a DAG, a clinic heartbeat, an
-- НаПоправку booking. `state` is the latest verdict; `notified` is the state the last
-- message announced, so an outage is one message and its recovery another, however many
-- checks run in between.
create table integration.alert_state (
    alert_key  text primary key,              -- e.g. 'integration:lead_source:uis'
    state      text not null
               constraint alert_state_known check (state in ('green', 'yellow', 'red')),
    since      timestamptz not null,          -- when it entered `state`
    notified   text
               constraint alert_notified_known check (notified in ('green', 'yellow', 'red')),
    last_sent  timestamptz,
    detail     text,
    checked_at timestamptz not null default now()
);

-- Every message sent (or tried): which alert, by which channel, to whom, and the outcome.
create table integration.alerts_sent (
    alert_id    bigint generated always as identity primary key,
    alert_key   text not null,
    kind        text not null
                constraint alert_kind_known
                check (kind in ('outage', 'recovery', 'escalation', 'booking')),
    channel     text not null constraint alert_channel_known check (channel in ('telegram', 'email')),
    destination text not null,                -- a chat id or an e-mail address
    message     text not null,
    sent_at     timestamptz not null default now(),
    error       text                          -- null = delivered
);
create index alerts_sent_recent on integration.alerts_sent (sent_at desc);

-- A lead nobody took within the configured minutes, escalated once to its branch's front
-- desk. One row per lead: the primary key is what makes it once.
create table integration.lead_escalations (
    lead_id        bigint primary key,  -- no FK: leads are truncated and reloaded in place
    escalated_at   timestamptz not null default now(),
    branch_id      text,                      -- the lead's branch (null: the default desk)
    desk           text not null,             -- the front desk (include/alerts.yaml) alerted
    channels       text[] not null,           -- the channels that delivered the alert
    waited_seconds int not null               -- from creation at the source to escalation
);
create index lead_escalations_day on integration.lead_escalations (escalated_at);

comment on table integration.lead_escalations is
    'Заявки, которые никто не взял в работу за отведённое время: когда и на какой ресепшн '
    'ушло напоминание.';
