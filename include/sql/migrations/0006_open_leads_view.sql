-- The front desk's leads inbox: readable labels and the view of open leads it shows.
-- The inbox page reads this view, so any other tool of the clinic sees exactly its columns.

-- How staff name a lead source: the configured name ('uis', 'site_main', ...) in Russian.
create function integration.lead_source_label(source text) returns text
    language sql immutable parallel safe
as $$
    select case
        when source = 'uis' then 'UIS'
        when source = 'flexbe' then 'Flexbe'
        when source = 'napopravku' then 'НаПоправку'
        when source = '32top' then '32top'
        when source = 'prodoctorov' then 'ПроДокторов'
        when source = 'sberzdorovie' then 'СберЗдоровье'
        when source like 'site\_%' then 'Сайт «' || substr(source, 6) || '»'
        else source
    end
$$;

-- A short campaign label from the UTM tags: "yandex / implants_spring"; the medium stands in
-- for a missing campaign ("google / cpc"); null when the lead carries no tags.
create function integration.lead_campaign_label(
    utm_source text, utm_medium text, utm_campaign text
) returns text
    language sql immutable parallel safe
as $$
    select nullif(
        concat_ws(
            ' / ',
            nullif(btrim(utm_source), ''),
            coalesce(nullif(btrim(utm_campaign), ''), nullif(btrim(utm_medium), ''))
        ),
        ''
    )
$$;

create view integration.open_leads as
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
 order by l.created_at desc, l.lead_id desc;

comment on view integration.open_leads is
    'Leads nobody has closed yet (new or in progress), newest first: what the inbox shows.';
comment on column integration.open_leads.waiting_seconds is
    'Seconds from creation at the source until taken, or until now while nobody has it.';
comment on column integration.open_leads.campaign is
    'utm_source / utm_campaign (utm_medium when there is no campaign).';
