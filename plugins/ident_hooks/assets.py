"""Airflow Assets that connect the DAGs: lead ingestion -> publishing and reports.

Every DAG imports its Assets from here and never defines them again: the dag-processor
keeps an Asset's watchers as the last parsed definition of it has them, so a copy without
the watcher would switch the watcher off.
"""

from airflow.sdk import Asset, AssetWatcher

from ident_hooks.triggers import ClinicScheduleTrigger, NewLeadsTrigger

# Updated by a pull_leads_* run that stored new or changed leads, and by the triggerer
# as soon as the clinic database has a new lead that could hold a doctor's time (pushed to
# the intake service, or written by any other writer): see ident_hooks.triggers.
LEADS = Asset(
    name="leads",
    uri="ident://integration/leads",
    watchers=[AssetWatcher(name="new_leads_in_clinic_db", trigger=NewLeadsTrigger())],
)

# Updated by the triggerer whenever a statement changes what the aggregators are shown
# (appointments, work intervals, doctors, branches, export settings and rules, leads
# holding time): migration 0013's change log. Change-driven publish DAGs run on it.
CLINIC_SCHEDULE = Asset(
    name="clinic_schedule",
    uri="ident://clinic/schedule",
    watchers=[AssetWatcher(name="clinic_schedule_changes", trigger=ClinicScheduleTrigger())],
)
