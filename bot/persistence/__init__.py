"""The ledger: SQLAlchemy models, engine, migrations and repositories."""
