-- Nothing changes on SQLite: its full-text table already holds the strings (see the
-- PostgreSQL migration of the same number).
SELECT 1;
