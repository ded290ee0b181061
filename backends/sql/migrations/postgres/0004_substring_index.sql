-- co, sw and ew filters served by an index: a trigram index (pg_trgm) over the strings of each
-- resource's search copy. A filter whose needle has three characters or more first asks the
-- index which resources contain it somewhere, then checks those candidates exactly.
--
-- pg_trgm ships with PostgreSQL and is a trusted extension (the database owner may create it).
-- Without it this migration fails rather than leave substring filters scanning unnoticed.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'scimd needs the PostgreSQL extension pg_trgm (for indexed co, sw and ew filters) and could not create it: %', SQLERRM
        USING HINT = 'Have the database owner or a superuser run CREATE EXTENSION pg_trgm; in this database (it ships with PostgreSQL, in the contrib package of some distributions), then start scimd again.';
END
$$;

-- Every string of a search copy, one per line. IMMUTABLE: it is the expression of the index,
-- and filters name it to use the index.
CREATE FUNCTION scimd_search_text(doc jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT string_agg(v #>> '{}', E'\n')
    FROM jsonb_path_query(doc, 'strict $.** ? (@.type() == "string")') AS v
$$;

CREATE INDEX scimd_resources_search_trgm ON scimd_resources
USING gin (scimd_search_text(search) gin_trgm_ops);
