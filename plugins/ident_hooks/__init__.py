"""Clinic online-booking integrations: schedule publishing, lead ingestion, reports."""

# The provider distribution's version (pyproject.toml reads it from here).
__version__ = "0.1.0"
