-- Tell open inbox pages at once when what they show changes: every statement that adds an
-- open lead, changes one (a take, a close, a source's update or cancellation) or removes
-- one sends a NOTIFY on channel `integration_leads`. The inbox's api-server LISTENs and
-- pushes an event to its pages, which then fetch the list (integration.open_leads, 0006 and
-- 0009) as they do on each poll.
--
-- Statement-level: a batch of 500 leads stored by one COPY is one notification, not 500.
-- The payload carries no personal data, only what happened and the newest lead id involved:
-- {"op": "insert", "lead_id": 123}. PostgreSQL delivers it when the transaction commits and
-- drops it on rollback; equal payloads within one transaction are delivered once.

create function integration.notify_leads_changed() returns trigger
    language plpgsql
as $$
declare
    newest bigint;
begin
    if tg_op = 'INSERT' then
        select max(lead_id) into newest from new_rows where status in ('new', 'in_progress');
    elsif tg_op = 'UPDATE' then
        -- Only changes the inbox can show: not the acknowledgement bookkeeping of a source
        -- (ack_*), nor changes to leads closed before and after.
        select max(n.lead_id) into newest
          from new_rows n
          join old_rows o using (lead_id)
         where (o.status in ('new', 'in_progress') or n.status in ('new', 'in_progress'))
           and to_jsonb(n) - array['acknowledged_at', 'ack_error', 'ack_required']
               is distinct from
               to_jsonb(o) - array['acknowledged_at', 'ack_error', 'ack_required'];
    elsif tg_op = 'DELETE' then
        select max(lead_id) into newest from old_rows where status in ('new', 'in_progress');
    else  -- TRUNCATE: no rows to look at
        perform pg_notify('integration_leads', json_build_object('op', 'truncate')::text);
        return null;
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

comment on function integration.notify_leads_changed() is
    'NOTIFY integration_leads {"op", "lead_id"} when a statement changes the open leads.';

-- A trigger with transition tables serves one event only, hence one trigger per event.
create trigger leads_notify_insert
    after insert on integration.leads
    referencing new table as new_rows
    for each statement execute function integration.notify_leads_changed();

create trigger leads_notify_update
    after update on integration.leads
    referencing old table as old_rows new table as new_rows
    for each statement execute function integration.notify_leads_changed();

create trigger leads_notify_delete
    after delete on integration.leads
    referencing old table as old_rows
    for each statement execute function integration.notify_leads_changed();

create trigger leads_notify_truncate
    after truncate on integration.leads
    for each statement execute function integration.notify_leads_changed();
