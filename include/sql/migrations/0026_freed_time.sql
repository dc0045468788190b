-- Freed time offered to those waiting (issue 20). A statement trigger notes each
-- appointment that stops holding its doctor's time — its status becomes 'cancelled', or
-- the row is deleted while still active — in a small queue. The offer_freed_time DAG
-- (ident_hooks.schedule.freed) reads the queue, keeps only the times that are really free
-- now, and fills integration.lead_freed_slots (0023) for the open leads that wait for them.
--
-- Why a queue and not offers written by the trigger: a deleted appointment leaves no trace
-- in the clinic's tables, so its time must be noted as it goes; but whether that time is
-- still free changes afterwards (re-booked, the doctor's work moved, the slot now too
-- close) and so do the leads (taken, closed, new ones). The DAG recomputes the offers from
-- the queue on every run and removes those that no longer hold, which a trigger firing
-- only on the cancellation could not do. The 0013 triggers already NOTIFY
-- `clinic_schedule` for these statements, so the DAG runs within seconds of them.
--
-- One row per appointment: cancelled again after being reactivated, it keeps its latest
-- time. Every such appointment is noted whatever its date (the database's clock is not
-- the runs' clock); runs drop the rows whose time has passed.

create table integration.freed_appointments (
    appointment_id text primary key,
    doctor_id      text not null,
    branch_id      text not null,
    starts_at      timestamptz not null,
    ends_at        timestamptz not null,
    freed_at       timestamptz not null default now()
);
create index freed_appointments_end on integration.freed_appointments (ends_at);

comment on table integration.freed_appointments is
    'Appointments that stopped holding their time (cancelled or deleted), for offer_freed_time.';

create function integration.note_freed_appointments() returns trigger
    language plpgsql
as $$
begin
    if tg_op = 'DELETE' then
        insert into integration.freed_appointments as f
            (appointment_id, doctor_id, branch_id, starts_at, ends_at)
        select appointment_id, doctor_id, branch_id, starts_at, ends_at
          from old_rows
         where status <> 'cancelled'
        on conflict (appointment_id) do update
           set doctor_id = excluded.doctor_id, branch_id = excluded.branch_id,
               starts_at = excluded.starts_at, ends_at = excluded.ends_at,
               freed_at = excluded.freed_at;
    else
        insert into integration.freed_appointments as f
            (appointment_id, doctor_id, branch_id, starts_at, ends_at)
        select o.appointment_id, o.doctor_id, o.branch_id, o.starts_at, o.ends_at
          from old_rows o
          join new_rows n using (appointment_id)
         where o.status <> 'cancelled' and n.status = 'cancelled'
        on conflict (appointment_id) do update
           set doctor_id = excluded.doctor_id, branch_id = excluded.branch_id,
               starts_at = excluded.starts_at, ends_at = excluded.ends_at,
               freed_at = excluded.freed_at;
    end if;
    return null;
end
$$;

create trigger appointments_freed_on_update
    after update on clinic.appointments
    referencing old table as old_rows new table as new_rows
    for each statement execute function integration.note_freed_appointments();
create trigger appointments_freed_on_delete
    after delete on clinic.appointments
    referencing old table as old_rows
    for each statement execute function integration.note_freed_appointments();
