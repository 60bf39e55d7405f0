"""The declarative base.  The model modules register their tables when the application
imports them (at start-up), not when this package is imported: :func:`load` does that."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

MODEL_MODULES = ("inventory.models.suppliers", "inventory.models.items")


class Base(DeclarativeBase):
    pass


def load() -> MetaData:
    """Import every model module; the metadata then holds all the tables."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
