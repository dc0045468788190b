-- The inbox shows one row per person (issue 20): open leads of one phone or one patient card
-- within a window are one conversation, with the patient's card, visits and freed time.
-- The grouping itself is the inbox's (plugins/ident_hooks/inbox/store.py); the database
-- gives it a phone key to compare numbers typed any way, indexes to look them up by it, and
-- tells open pages when matches, choices or freed slots of a lead change.

-- The last ten digits of a phone: the subscriber number of a Russian phone however it was
-- typed (+7 916 123-45-67, 8 (916) 1234567, 9161234567); null for anything shorter.
create function integration.phone_key(phone text) returns text
    language sql immutable parallel safe strict
as $$
    select case
        when length(regexp_replace(phone, '\D', '', 'g')) >= 10
        then right(regexp_replace(phone, '\D', '', 'g'), 10)
    end
$$;

comment on function integration.phone_key(text) is
    'The last ten digits of a phone (null when shorter): compares numbers typed any way.';

-- The inbox looks up, for up to 200 rows at once, the cards and the appointments of each
-- row's phone: by these indexes, not by scanning every appointment.
create index appointments_phone_key on clinic.appointments (integration.phone_key(patient_phone))
    where patient_phone is not null;
create index patient_phones_phone_key on clinic.patient_phones (integration.phone_key(phone));

-- A lead's matches, the front desk's choice and freed slots change what its inbox row shows:
-- the same NOTIFY as a change of the lead itself (0012), with the newest lead id involved.
create function integration.notify_lead_patient_changed() returns trigger
    language plpgsql
as $$
declare
    newest bigint;
begin
    if tg_op = 'DELETE' then
        select max(lead_id) into newest from old_rows;
    else
        select max(lead_id) into newest from new_rows;
    end if;
    if newest is not null then
        perform pg_notify(
            'integration_leads',
            json_build_object('op', lower(tg_op), 'lead_id', newest)::text
        );
    end if;
    return null;
end
$$;

comment on function integration.notify_lead_patient_changed() is
    'NOTIFY integration_leads {"op", "lead_id"} when a lead''s matches, choice or freed slots change.';

create trigger lead_patient_matches_notify_insert
    after insert on integration.lead_patient_matches
    referencing new table as new_rows
    for each statement execute function integration.notify_lead_patient_changed();
create trigger lead_patient_matches_notify_update
    after update on integration.lead_patient_matches
    referencing new table as new_rows
    for each statement execute function integration.notify_lead_patient_changed();
create trigger lead_patient_matches_notify_delete
    after delete on integration.lead_patient_matches
    referencing old table as old_rows
    for each statement execute function integration.notify_lead_patient_changed();

create trigger lead_patient_choices_notify_insert
    after insert on integration.lead_patient_choices
    referencing new table as new_rows
    for each statement execute function integration.notify_lead_patient_changed();
create trigger lead_patient_choices_notify_update
    after update on integration.lead_patient_choices
    referencing new table as new_rows
    for each statement execute function integration.notify_lead_patient_changed();

create trigger lead_freed_slots_notify_insert
    after insert on integration.lead_freed_slots
    referencing new table as new_rows
    for each statement execute function integration.notify_lead_patient_changed();
create trigger lead_freed_slots_notify_delete
    after delete on integration.lead_freed_slots
    referencing old table as old_rows
    for each statement execute function integration.notify_lead_patient_changed();
