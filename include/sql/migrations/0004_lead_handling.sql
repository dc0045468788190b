-- What the front desk did with each lead, and the times the reports measure.

alter table integration.leads
    add column taken_by      text,            -- the Airflow user who took it
    add column taken_at      timestamptz,
    add column closed_by     text,
    add column closed_at     timestamptz,
    add column close_comment text,
    -- Response time: taken - created at the source; load lag: loaded - created.
    add column response_seconds numeric
        generated always as (extract(epoch from taken_at - created_at)) stored,
    add column load_lag_seconds numeric
        generated always as (extract(epoch from loaded_at - created_at)) stored,
    add constraint lead_taken_with_who check ((taken_at is null) = (taken_by is null)),
    add constraint lead_closed_after_taken
        check (closed_at is null or (taken_at is not null and closed_at >= taken_at));

create index leads_open on integration.leads (created_at desc)
    where status in ('new', 'in_progress');
