"""Storage: tables, migrations, sessions and shared column types."""
