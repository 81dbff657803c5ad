"""SQLite access for mltui: connection, schema and migrations, queries. Never imports Textual."""
