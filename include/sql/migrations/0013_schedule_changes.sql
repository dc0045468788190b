-- Change-driven publishing (issue 11): every statement that changes what the aggregators
-- are shown records the affected (doctor, branch, local day) keys in a durable change log
-- and sends a NOTIFY on channel `clinic_schedule`. The practice-management system keeps
-- writing the clinic tables as before; nothing is asked of it.
--
-- Which changes count: only columns that change a published schedule. An appointment whose
-- status goes from 'scheduled' to 'arrived' still holds the time; a lead an admin takes
-- ('new' -> 'in_progress') still holds it, a lead closed frees it. An UPDATE that rewrites
-- rows with the values they had (a sync that upserts everything) logs nothing.
--
-- NULL keys mean "all": a doctor's change (name, activity) has no day; a branch's change,
-- an aggregator's export settings or a TRUNCATE have no doctor, and a publishing run treats
-- them as a reason for a full recomputation.
--
-- Publishing runs do not trust change_id order for progress: identity values are taken at
-- insert and committed in any order. Each row keeps its writer's transaction id (`xid`),
-- and a run remembers the snapshot it read the clinic in (integration.schedule_state); the
-- next run takes exactly the changes that snapshot could not see.

create table integration.schedule_changes (
    change_id    bigint generated always as identity primary key,
    xid          xid8 not null default pg_current_xact_id(),
    changed_at   timestamptz not null default now(),
    source_table text not null,
    doctor_id    text,          -- NULL: every doctor
    branch_id    text,          -- NULL: every branch (or not known)
    local_day    date,          -- branch-local day; NULL: every day
    aggregator   text           -- NULL: every aggregator
);
create index schedule_changes_xid on integration.schedule_changes (xid);
create index schedule_changes_time on integration.schedule_changes (changed_at);

comment on table integration.schedule_changes is
    'Keys whose published schedule may have changed, written by statement triggers (0013).';

-- TG_ARGV: [0] the columns whose change matters, over a transition table;
-- [1] which of its rows count; [2] the keys (doctor_id, branch_id, local_day,
-- aggregator) as a select list over those columns, aliased r.
create function integration.log_schedule_change() returns trigger
    language plpgsql
as $$
declare
    relevant text := tg_argv[0];
    counted  text := tg_argv[1];
    keys     text := tg_argv[2];
    changed  text;
    logged   bigint;
begin
    if tg_op = 'TRUNCATE' then
        insert into integration.schedule_changes (source_table) values (tg_table_name);
        perform pg_notify('clinic_schedule', tg_table_name);
        return null;
    end if;
    changed := case tg_op
        when 'INSERT' then format('select %s from new_rows where %s', relevant, counted)
        when 'DELETE' then format('select %s from old_rows where %s', relevant, counted)
        else format(
            '(select %1$s from new_rows where %2$s except select %1$s from old_rows where %2$s)'
            ' union all '
            '(select %1$s from old_rows where %2$s except select %1$s from new_rows where %2$s)',
            relevant, counted)
    end;
    execute format(
        'insert into integration.schedule_changes'
        ' (source_table, doctor_id, branch_id, local_day, aggregator)'
        ' select distinct %L, k.* from (%s) r cross join lateral (select %s) k',
        tg_table_name, changed, keys);
    get diagnostics logged = row_count;
    if logged > 0 then
        perform pg_notify('clinic_schedule', tg_table_name);
    end if;
    return null;
end
$$;

comment on function integration.log_schedule_change() is
    'Statement trigger: log the schedule keys a statement changed and NOTIFY clinic_schedule.';

-- The branch-local day of an instant (Moscow when the branch is unknown).
create function integration.branch_day(at timestamptz, branch text) returns date
    language sql stable
as $$
    select (at at time zone coalesce(
        (select timezone from clinic.branches where branch_id = branch), 'Europe/Moscow'))::date
$$;

-- One trigger per event and table: a trigger with transition tables serves one event.
do $$
declare
    spec record;
    event text;
begin
    for spec in
        select * from (values
            ('clinic', 'appointments',
             'doctor_id, branch_id, starts_at, ends_at, status <> ''cancelled'' as holds',
             'true',
             'r.doctor_id, r.branch_id, integration.branch_day(r.starts_at, r.branch_id), null::text'),
            ('clinic', 'work_intervals',
             'doctor_id, branch_id, starts_at, ends_at',
             'true',
             'r.doctor_id, r.branch_id, integration.branch_day(r.starts_at, r.branch_id), null::text'),
            ('clinic', 'doctors',
             'doctor_id, full_name, specialty, is_active',
             'true',
             'r.doctor_id, null::text, null::date, null::text'),
            ('clinic', 'branches',
             'branch_id, name, timezone, address',
             'true',
             'null::text, r.branch_id, null::date, null::text'),
            ('clinic', 'export_settings',
             'aggregator, days_ahead, skip_hours_today, slot_minutes, enabled',
             'true',
             'null::text, null::text, null::date, r.aggregator'),
            ('clinic', 'export_rules',
             'aggregator, doctor_id, publish, slot_minutes',
             'true',
             'r.doctor_id, null::text, null::date, r.aggregator'),
            -- Leads hold a doctor's time while open (schedule.reader.BUSY_SQL).
            ('integration', 'leads',
             'doctor_id, branch_id, requested_start, requested_end',
             'status in (''new'', ''in_progress'') and source_state is null'
             ' and doctor_id is not null and requested_start is not null',
             'r.doctor_id, r.branch_id, integration.branch_day(r.requested_start, r.branch_id),'
             ' null::text')
        ) as t (schema_name, table_name, relevant, counted, keys)
    loop
        foreach event in array array['insert', 'update', 'delete'] loop
            execute format(
                'create trigger %I after %s on %I.%I referencing %s'
                ' for each statement execute function integration.log_schedule_change(%L, %L, %L)',
                spec.table_name || '_schedule_change_' || event, event,
                spec.schema_name, spec.table_name,
                case event
                    when 'insert' then 'new table as new_rows'
                    when 'update' then 'old table as old_rows new table as new_rows'
                    else 'old table as old_rows'
                end,
                spec.relevant, spec.counted, spec.keys);
        end loop;
        execute format(
            'create trigger %I after truncate on %I.%I'
            ' for each statement execute function integration.log_schedule_change()',
            spec.table_name || '_schedule_change_truncate', spec.schema_name, spec.table_name);
    end loop;
end
$$;

-- What each aggregator was last sent, kept so that a run after a change recomputes only
-- the changed doctors and builds the rest (the IDENT protocol's whole timetable, a
-- ПроДокторов branch document) from here instead of rereading the clinic.
create table integration.schedule_state (
    aggregator   text primary key,
    snapshot     pg_snapshot not null, -- the clinic as read by the last published run
    computed_at  timestamptz not null, -- that run's "now"
    full_at      timestamptz not null, -- the last full recomputation
    doctors      jsonb not null,       -- published doctors (names, slot lengths, aliases)
    branches     jsonb not null,
    assignments  jsonb not null        -- (doctor, branch) pairs with work in the horizon
);

-- The cells of that state, unclipped by "now": a run clips them to its own moment.
create table integration.schedule_cells (
    aggregator text not null,
    doctor_id  text not null,
    branch_id  text not null,
    timezone   text not null,
    starts_at  bigint not null,   -- epoch seconds
    ends_at    bigint not null,
    is_free    boolean not null
);
create index schedule_cells_doctor on integration.schedule_cells (aggregator, doctor_id);

alter table integration.publish_log
    add column mode text
        constraint publish_mode_known check (mode in ('full', 'changes', 'idle', 'poll')),
    add column changes int,               -- change-log rows this run published
    add column doctors_recomputed int;    -- doctors read and recomputed (NULL: all)

comment on column integration.publish_log.mode is
    'full: whole clinic read; changes: only changed doctors read; idle: nothing changed, '
    'kept state only; poll: whole clinic read on the timer (publish_on_change off).';
