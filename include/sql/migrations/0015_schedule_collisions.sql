-- The double-booking window, measured (issue 11): for every lead from an aggregator that
-- asked for a doctor and a time, whether that time was already taken when the patient
-- booked it there, and when that aggregator had last received the doctor's schedule.
--
-- A lead is "from an aggregator" when its source is also a configured aggregator
-- (integration.integrations: the same instance name in both sections of
-- integrations.yaml, such as napopravku or 32top).

-- When each aggregator last accepted a schedule request carrying a doctor's time; written
-- by the publishing run after each accepted request (schedule/publish.py).
create table integration.doctor_publications (
    aggregator text not null,
    doctor_id  text not null,
    sent_at    timestamptz not null,
    primary key (aggregator, doctor_id)
);

create table integration.lead_collisions (
    lead_id           bigint primary key,  -- no FK: a lead deleted later keeps its measurement
    aggregator        text not null,
    doctor_id         text not null,
    requested_start   timestamptz not null,
    booked_at         timestamptz not null, -- the lead's created_at at the aggregator
    stored_at         timestamptz not null, -- when it reached us
    taken             boolean not null,     -- an appointment held the time when it was booked
    appointment_id    text,                 -- that appointment
    taken_since       timestamptz,          -- its created_at
    schedule_sent_at  timestamptz           -- the aggregator's last schedule of the doctor, as of stored_at
);
create index lead_collisions_week on integration.lead_collisions (aggregator, booked_at);

comment on table integration.lead_collisions is
    'Leads from aggregators asking for a doctor''s time: was it taken already (0015).';

create function integration.measure_lead_collisions() returns trigger
    language plpgsql
as $$
begin
    insert into integration.lead_collisions
        (lead_id, aggregator, doctor_id, requested_start, booked_at, stored_at, taken,
         appointment_id, taken_since, schedule_sent_at)
    select n.lead_id, n.source, n.doctor_id, n.requested_start, n.created_at, n.loaded_at,
           a.appointment_id is not null, a.appointment_id, a.created_at, p.sent_at
      from new_rows n
      join integration.integrations i on i.role = 'aggregator' and i.name = n.source
      left join lateral (
            select appointment_id, created_at
              from clinic.appointments a
             where a.doctor_id = n.doctor_id and a.status <> 'cancelled'
               and a.starts_at < coalesce(n.requested_end,
                                          n.requested_start + interval '30 minutes')
               and a.ends_at > n.requested_start
               and a.created_at <= n.created_at
             order by a.created_at
             limit 1) a on true
      left join integration.doctor_publications p
             on p.aggregator = n.source and p.doctor_id = n.doctor_id
     where n.doctor_id is not null and n.requested_start is not null
    on conflict (lead_id) do nothing;
    return null;
end
$$;

create trigger leads_measure_collisions
    after insert on integration.leads
    referencing new table as new_rows
    for each statement execute function integration.measure_lead_collisions();

-- Per aggregator and week (Monday, clinic time zone of the report build): leads asking
-- for a doctor's time, how many of those times were taken already, and how many of the
-- taken ones the aggregator could have known of (it had received the doctor's schedule
-- after the appointment was made). Rebuilt in full by every report build (small).
create table report.schedule_collisions (
    week             date not null,
    aggregator       text not null,
    title            text not null,
    leads_with_time  int not null,
    collisions       int not null,
    known_to_aggregator int not null,
    median_taken_minutes numeric,  -- how long a collided time had been taken before the booking
    primary key (week, aggregator)
);

comment on table report.schedule_collisions is
    'Заявки агрегаторов на выбранное время врача: сколько пришлись на уже занятое время, по неделям.';
comment on column report.schedule_collisions.week is 'Понедельник недели, когда пациент записался на агрегаторе.';
comment on column report.schedule_collisions.aggregator is 'Агрегатор (имя в integrations.yaml).';
comment on column report.schedule_collisions.title is 'Название агрегатора для сотрудников.';
comment on column report.schedule_collisions.leads_with_time is 'Заявок с выбранным врачом и временем.';
comment on column report.schedule_collisions.collisions is 'Из них на время, уже занятое приёмом в момент записи.';
comment on column report.schedule_collisions.known_to_aggregator is
    'Из совпадений: агрегатор к тому времени уже получил расписание врача после записи на приём.';
comment on column report.schedule_collisions.median_taken_minutes is
    'Медиана: сколько минут время было занято до записи через агрегатор.';
