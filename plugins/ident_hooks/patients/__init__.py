"""Leads matched to the clinic's patient cards (issue 20; docs/patients.md)."""
