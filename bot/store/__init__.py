"""Persistence: SQLAlchemy tables, the unit of work (`Store`) with one repository per aggregate, and the audit
hash chain."""
