"""SQLite history: schema, migrations, writes of a run's results and the queries analysts use."""
