-- What each source's search copy was built with: a fingerprint of the searchable attributes of
-- each resource type (names, types, caseExact, extensions). When the configured schemas no
-- longer match it, the search copy of that source and type is rebuilt at start.
CREATE TABLE scimd_search_fingerprints (
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (source, kind)
);
