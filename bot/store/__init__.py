"""Persistence: SQLAlchemy tables, the store's transactions, and the audit hash chain."""
