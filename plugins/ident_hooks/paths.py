"""Where the package finds the files it reads at run time: the clinic migrations
(``sql/migrations``), the default ``integrations.yaml`` and ``alerts.yaml``, and the
marketing channel rules ``marketing_channels.yaml``.

In a checkout (the run command, the tests, docker-compose's mounted ``plugins/``) they are
the checkout's ``include/`` beside ``plugins/``, so an edit there takes effect. The
provider wheel packs that folder into the package as ``ident_hooks/include``
(``pyproject.toml``), which an installed provider uses; a deployment points
``IDENT_INTEGRATIONS_CONFIG`` and ``IDENT_ALERTS_CONFIG`` at its own files.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_PACKED = PACKAGE_DIR / "include"
INCLUDE_DIR = _PACKED if _PACKED.is_dir() else PACKAGE_DIR.parents[1] / "include"
