-- A lead's state at its source, kept apart from what the front desk did with it.
-- `status` (0002) is the admins' own and no pull ever writes it; `source_state` is the
-- source's and every pull refreshes it like the lead's other source fields. Null means
-- the source still lists the lead as active; 'cancelled' and 'deleted' mean the clinic
-- cancelled or deleted it there (Flexbe status codes 10 and 11). A deleted lead can be
-- restored at the source, and the next pull sets the column back to null.

alter table integration.leads
    add column source_state text,
    add constraint lead_source_state_known
        check (source_state in ('cancelled', 'deleted'));

comment on column integration.leads.source_state is
    'The lead''s state at its source: null = active there, cancelled or deleted = the clinic '
    'cancelled or deleted it at the source (it leaves the inbox; status stays the admins'').';

-- The inbox's view (0006) with the same columns, leaving out leads cancelled or deleted at
-- their source: the front desk has nothing to do with them, whoever had taken them.
create or replace view integration.open_leads as
select l.lead_id,
       l.status,
       l.source,
       integration.lead_source_label(l.source) as source_label,
       l.created_at,
       l.loaded_at,
       -- Until someone takes the lead it keeps waiting; after that the wait is fixed.
       round(extract(epoch from coalesce(l.taken_at, now()) - l.created_at))::bigint
           as waiting_seconds,
       l.name,
       l.phone_e164,
       l.phone_raw,
       l.email,
       l.comment,
       l.form_name,
       l.doctor_id,
       coalesce(d.full_name, l.doctor_name_raw) as doctor_name,
       l.requested_start,
       l.requested_end,
       l.branch_id,
       coalesce(b.name, l.branch_id) as branch_name,
       b.timezone as branch_timezone,
       integration.lead_campaign_label(l.utm_source, l.utm_medium, l.utm_campaign) as campaign,
       l.utm_source,
       l.utm_medium,
       l.utm_campaign,
       l.utm_term,
       l.utm_content,
       l.referrer_host,
       l.taken_by,
       l.taken_at
  from integration.leads l
  left join clinic.doctors d on d.doctor_id = l.doctor_id
  left join clinic.branches b on b.branch_id = l.branch_id
 where l.status in ('new', 'in_progress')
   and l.source_state is null
 order by l.created_at desc, l.lead_id desc;

comment on view integration.open_leads is
    'Leads nobody has closed yet (new or in progress) and still active at their source '
    '(not cancelled or deleted there), newest first: what the inbox shows.';
