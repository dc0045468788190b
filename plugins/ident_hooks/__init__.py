"""Clinic online-booking integrations: schedule publishing, lead ingestion, reports."""
