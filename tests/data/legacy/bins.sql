-- Each statement is preceded by the bin it must land in ("-- expect: <status> [| reason part]").

-- expect: analysed
CREATE TABLE IF NOT EXISTS public.areas (id UUID PRIMARY KEY DEFAULT gen_random_uuid());
-- expect: analysed
CREATE UNIQUE INDEX ux_active ON time_entries (owner_id) WHERE stopped_at IS NULL;
-- expect: analysed
CREATE TYPE entry_kind AS ENUM ('work', 'break');
-- expect: analysed
ALTER TABLE time_entries ADD COLUMN IF NOT EXISTS note text, DROP COLUMN IF EXISTS legacy;
-- expect: analysed
ALTER INDEX ux_active RENAME TO ux_time_entries_active;
-- expect: analysed
DROP TABLE IF EXISTS scratch CASCADE;
-- expect: analysed
INSERT INTO roles (slug, name) VALUES ('admin', 'Administrator') ON CONFLICT (slug) DO NOTHING;
-- expect: analysed
UPDATE time_entries SET end_time = now() WHERE end_time IS NULL;
-- expect: analysed
DELETE FROM time_entries WHERE end_time < now() - interval '1 year';
-- expect: irrelevant
SET search_path = public;
-- expect: irrelevant
SELECT pg_catalog.set_config('search_path', '', false);
-- expect: irrelevant
BEGIN;
-- expect: irrelevant
COMMIT;
-- expect: analysed
COMMENT ON TABLE areas IS 'Areas; of work';
-- expect: analysed
COMMENT ON COLUMN areas.name IS 'shown in the menu';
-- expect: irrelevant
COMMENT ON INDEX ux_active IS 'one running timer per owner';
-- expect: analysed
CREATE TRIGGER trg_touch BEFORE UPDATE OF end_time ON time_entries
    FOR EACH ROW EXECUTE FUNCTION touch();
-- expect: analysed
GRANT SELECT ON areas TO reporting;
-- expect: irrelevant
GRANT USAGE ON SCHEMA public TO reporting;
-- expect: irrelevant
CREATE SEQUENCE invoice_no START 1000;
-- expect: irrelevant
CREATE SCHEMA IF NOT EXISTS reporting;
-- expect: not_analysed | CREATE EXTENSION
CREATE EXTENSION IF NOT EXISTS pgcrypto;
-- expect: not_analysed | DO block
DO $$ BEGIN PERFORM 1; END $$;
-- expect: not_analysed | CREATE OR REPLACE FUNCTION
CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;
-- expect: not_analysed | CREATE FUNCTION
CREATE FUNCTION add_one(a int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT a + 1;
END;
-- expect: not_analysed | CREATE POLICY
CREATE POLICY own_rows ON time_entries USING (owner_id = current_setting('app.user')::int);
-- expect: not_analysed | ALTER TYPE
ALTER TYPE entry_kind ADD VALUE 'holiday';
-- expect: not_analysed | ALTER TABLE
ALTER TABLE areas OWNER TO app;
-- expect: not_analysed | view's query
CREATE VIEW active_timers AS SELECT * FROM time_entries WHERE end_time IS NULL;
-- expect: not_analysed | CREATE TABLE ... AS
CREATE TABLE archive AS SELECT * FROM time_entries;
-- expect: error
CREATE TABLE broken (id int DEFAULT);
-- expect: error
UPDATE time_entries SET = 1;
-- expect: error
SELEC 1;
-- expect: analysed
CREATE INDEX ix_after_errors ON time_entries (start_time);
