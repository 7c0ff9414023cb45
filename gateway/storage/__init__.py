"""The storage layer, at the bottom of the imports: ORM models (the tables), the database engine
and the embedded PostgreSQL, and the audit store (the hash-chained, append-only log).
Imports nothing of resolvers, schema or the app.
"""

from gateway.storage import outbox as outbox  # the outbox's tables join the models' metadata
