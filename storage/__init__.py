"""Storage: the database tables and the only code that writes rows."""
