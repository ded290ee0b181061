-- The strings of the search copy as a stored column, indexed by trigrams instead of the
-- expression of migration 4. A substring filter the index does not serve (a value most
-- resources contain, or a table without statistics yet) then tests a column on each row
-- rather than collecting the strings of every search copy again.
ALTER TABLE scimd_resources
    ADD COLUMN search_text TEXT GENERATED ALWAYS AS (scimd_search_text(search)) STORED;

DROP INDEX scimd_resources_search_trgm;

CREATE INDEX scimd_resources_search_text_trgm ON scimd_resources
USING gin (search_text gin_trgm_ops);
