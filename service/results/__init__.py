"""Results: the results table (one row per trial, :mod:`~service.results.table`) and the store
(:mod:`~service.results.store`, the one module that talks to the database, with its Alembic
migrations). See docs/ARCHITECTURE.md."""
