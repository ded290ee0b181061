-- Resource counts per source and type, kept by every create and delete, so that an unfiltered
-- list knows totalResults without counting a million rows.
CREATE TABLE scimd_counts (
    source TEXT   COLLATE "C" NOT NULL,
    kind   TEXT   COLLATE "C" NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (source, kind)
);

INSERT INTO scimd_counts (source, kind, n)
SELECT source, kind, COUNT(*) FROM scimd_resources GROUP BY source, kind;

-- emails.value filters read the index alone.
DROP INDEX scimd_emails_value;
CREATE INDEX scimd_emails_value ON scimd_emails (source, value) INCLUDE (user_id);
