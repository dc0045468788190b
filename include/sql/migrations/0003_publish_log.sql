-- Schedule publishing: what was sent to each aggregator, and when.

create table integration.publish_log (
    publish_id    bigint generated always as identity primary key,
    aggregator    text not null,
    run_id        text,                       -- the Airflow DAG run
    started_at    timestamptz not null,
    finished_at   timestamptz not null default now(),
    status        text not null
                  constraint publish_status_known check (status in ('sent', 'skipped', 'failed')),
    doctors       int not null default 0,
    free_slots    int not null default 0,
    busy_cells    int not null default 0,
    requests_sent int not null default 0,
    requests_skipped int not null default 0,
    bytes_sent    bigint not null default 0,
    http_status   int,                        -- the last status the service answered
    payload_hash  text,                       -- sha256 over all request bodies of the run
    error         text
);
create index publish_log_recent on integration.publish_log (aggregator, started_at desc);

-- The last successfully sent body of each request, so an unchanged one is not sent again
-- within the refresh period.
create table integration.publish_state (
    aggregator   text not null,
    request_key  text not null,               -- endpoint + chunk, e.g. "slots:msk-1"
    payload_hash text not null,
    sent_at      timestamptz not null,
    primary key (aggregator, request_key)
);
