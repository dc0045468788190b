-- A byte budget per change-driven aggregator instance, and time-only resends only when
-- something bookable went stale (issue 17).

-- How far the instance's byte budget is spent: the moment it would be rested again had
-- nothing more been sent (the theoretical arrival time of ident_hooks.schedule.budget).
create table integration.publish_budget (
    aggregator  text primary key,
    spent_until timestamptz not null
);

-- When a sent body goes stale by time alone: its first free slot of today crosses the
-- "no slots in the next N hours" cut-off. NULL: nothing in it can (no free slot today).
alter table integration.publish_state add column stale_at timestamptz;

-- Whether the kept state was published with the near days withdrawn (a stale clinic
-- heartbeat): its flipping is a change of what is offered, not time passing.
alter table integration.schedule_state add column withdrawn boolean not null default false;

-- A run may wait for its budget: it then sends only what the service's own rules demand
-- and is logged as deferred until the moment it tries again (NULL: the timer's next tick).
alter table integration.publish_log drop constraint publish_status_known;
alter table integration.publish_log
    add constraint publish_status_known
        check (status in ('sent', 'skipped', 'failed', 'deferred')),
    add column deferred_until timestamptz;

comment on column integration.publish_log.bytes_sent is
    'bytes on the wire: compressed where the instance sends gzip';
comment on column integration.publish_log.deferred_until is
    'status deferred: the changes wait for the byte budget until then (NULL: the next tick)';
