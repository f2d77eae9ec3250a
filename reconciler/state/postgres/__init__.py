"""The shared state backend: every workspace of a PostgreSQL database, for teams and pipelines on many runners.

``location`` parses a ``postgresql://`` URL (the password never shown; it imports no driver, so the command
line can show a location without psycopg), ``schema`` owns the tables (creation, migrations, recognising a
state), ``store`` has ``PostgresStateStore``, the protocol's methods, over ``session`` (the connection and the
shapes of its transactions); ``rows`` reads rows with open intents laid over them, ``journal`` writes and reads
the journal, ``copies`` does ``state pull`` and ``state push`` as SQLite state files. ``docs/state-postgres.md``
is the overview.
"""
