"""The only package that writes SQLite. Opened lazily: importing it is cheap."""

from stripectl.store.db import SCHEMA_VERSION, Store, mirror_exists, open_store

__all__ = ["SCHEMA_VERSION", "Store", "mirror_exists", "open_store"]
