"""The only package that writes SQLite. Opened lazily: importing it is cheap."""

from stripectl.store.db import Store, mirror_exists, open_store
from stripectl.store.migrations import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Store", "mirror_exists", "open_store"]
