-- The clinic database contract: what the practice-management system (or its sync job)
-- writes and every integration reads. Column names are the contract; see README.

create schema if not exists clinic;

-- Raises a readable error instead of a bare check-constraint name for a bad zone.
create function clinic.require_time_zone(tz text) returns boolean
language plpgsql immutable as $$
begin
    if tz is null or not exists (select 1 from pg_timezone_names where name = tz) then
        raise exception 'unknown time zone "%": use an IANA name such as Europe/Moscow', tz
            using errcode = 'check_violation';
    end if;
    return true;
end;
$$;

create table clinic.branches (
    branch_id text primary key check (branch_id <> ''),
    name      text not null,
    timezone  text not null default 'Europe/Moscow'
              constraint branch_timezone_is_known check (clinic.require_time_zone(timezone)),
    address   text
);

create table clinic.doctors (
    doctor_id text primary key check (doctor_id <> ''),
    full_name text not null,
    specialty text,
    is_active boolean not null default true
);

create table clinic.work_intervals (
    doctor_id text not null references clinic.doctors (doctor_id) on delete cascade,
    branch_id text not null references clinic.branches (branch_id),
    starts_at timestamptz not null,
    ends_at   timestamptz not null,
    constraint work_interval_ends_after_start check (ends_at > starts_at),
    constraint work_interval_at_most_a_day check (ends_at - starts_at <= interval '24 hours'),
    primary key (doctor_id, starts_at)
);
create index work_intervals_period on clinic.work_intervals (starts_at, ends_at);

-- A doctor cannot work in two places at once. btree_gist is not always available, so
-- this is a statement-level trigger: one set-based check per insert, fast for bulk loads.
create function clinic.reject_overlapping_work() returns trigger
language plpgsql as $$
declare
    clash record;
begin
    select n.doctor_id, n.starts_at as new_start, n.ends_at as new_end,
           w.branch_id, w.starts_at, w.ends_at
      into clash
      from changed_rows n
      join clinic.work_intervals w
        on w.doctor_id = n.doctor_id
       and w.starts_at < n.ends_at and w.ends_at > n.starts_at
       and w.starts_at <> n.starts_at
     limit 1;
    if found then
        raise exception 'doctor % already works % .. % in branch %; new interval % .. % overlaps it',
            clash.doctor_id, clash.starts_at, clash.ends_at, clash.branch_id,
            clash.new_start, clash.new_end
            using errcode = 'exclusion_violation';
    end if;
    return null;
end;
$$;
create trigger work_intervals_no_overlap_on_insert
    after insert on clinic.work_intervals
    referencing new table as changed_rows
    for each statement execute function clinic.reject_overlapping_work();
create trigger work_intervals_no_overlap_on_update
    after update on clinic.work_intervals
    referencing new table as changed_rows
    for each statement execute function clinic.reject_overlapping_work();

create table clinic.appointments (
    appointment_id text primary key check (appointment_id <> ''),
    doctor_id      text not null references clinic.doctors (doctor_id),
    branch_id      text not null references clinic.branches (branch_id),
    starts_at      timestamptz not null,
    ends_at        timestamptz not null,
    status         text not null default 'scheduled' check (status <> ''),
    patient_phone  text,
    created_at     timestamptz not null default now(),
    constraint appointment_ends_after_start check (ends_at > starts_at)
);
create index appointments_doctor_time on clinic.appointments (doctor_id, starts_at);
create index appointments_period on clinic.appointments (starts_at);
create index appointments_patient_phone on clinic.appointments (patient_phone, created_at);

-- "Правила выгрузки расписания": per aggregator, then per doctor.
create table clinic.export_settings (
    aggregator       text primary key
                     constraint export_settings_known_aggregator
                     check (aggregator in ('prodoctorov', 'napopravku', 'sberzdorovie', '32top')),
    days_ahead       int not null default 30 check (days_ahead between 0 and 366),
    skip_hours_today numeric not null default 2 check (skip_hours_today between 0 and 24),
    slot_minutes     int not null default 30 check (slot_minutes between 5 and 480),
    enabled          boolean not null default true
);

create table clinic.export_rules (
    aggregator   text not null
                 constraint export_rules_known_aggregator
                 check (aggregator in ('prodoctorov', 'napopravku', 'sberzdorovie', '32top')),
    doctor_id    text not null references clinic.doctors (doctor_id) on delete cascade,
    publish      boolean not null default true,
    slot_minutes int check (slot_minutes between 5 and 480),
    primary key (aggregator, doctor_id)
);
