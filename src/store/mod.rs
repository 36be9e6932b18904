//! Store: sqlx pool over SQLite (embedded default) or PostgreSQL, migrations, one function per query.
