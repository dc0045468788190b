"""Airflow Assets that connect the DAGs: lead ingestion -> publishing and reports."""

from airflow.sdk import Asset

# Updated by a pull_leads_* run that stored new or changed leads.
LEADS = Asset(name="leads", uri="ident://integration/leads")
