"""Drift of a live database: its schema, read read-only, against the schema the migrations
build at the revision it is stamped with (and the models and the baseline, when configured).

:mod:`~.live` reads the live database, :mod:`~.check` compares, :mod:`~.items` makes the
``live_drift`` item (``--schemaguard-live-dsn``), :mod:`~.cli` is the ``schemaguard-drift``
command.  Only :mod:`~.items` imports pytest.
"""

from __future__ import annotations
