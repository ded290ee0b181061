-- Resource counts per source and type, kept by every create and delete, so that an unfiltered
-- list knows totalResults without counting a million rows.
CREATE TABLE scimd_counts (
    source TEXT    NOT NULL,
    kind   TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (source, kind)
) WITHOUT ROWID;

INSERT INTO scimd_counts (source, kind, n)
SELECT source, kind, COUNT(*) FROM scimd_resources GROUP BY source, kind;

-- emails as a covering index: a substring filter scans (source, value, user_id) alone.
CREATE TABLE scimd_emails_covering (
    source  TEXT NOT NULL,
    value   TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (source, value, user_id)
) WITHOUT ROWID;

INSERT OR IGNORE INTO scimd_emails_covering (source, value, user_id)
SELECT source, value, user_id FROM scimd_emails;

DROP TABLE scimd_emails;
ALTER TABLE scimd_emails_covering RENAME TO scimd_emails;
CREATE INDEX scimd_emails_user ON scimd_emails (source, user_id);
