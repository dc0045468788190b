"""Development tooling of the platform, outside the provider package ``ident_hooks``: the run
command (``python -m ident_dev.devstack``), the demo clinic (``python -m ident_dev.demo``),
the embedded PostgreSQL, the simulators of the external services and the Airflow stack of
the end-to-end tests, shared by ``scripts/run.sh``, ``tests/`` and ``bench/``. The
provider never imports it (``tests/test_provider_distribution.py``)."""
