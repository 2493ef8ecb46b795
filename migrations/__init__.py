"""Alembic migrations of the ledger schema (packaged so `carrybot db upgrade` finds them)."""
