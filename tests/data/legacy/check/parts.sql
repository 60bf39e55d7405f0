-- stopped_at (which the schema does not have) named by parts of analysed statements.
CREATE TABLE IF NOT EXISTS time_entries (
    id         SERIAL PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES users_web (id),
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    start_time TIMESTAMPTZ NOT NULL,
    end_time   TIMESTAMPTZ GENERATED ALWAYS AS (stopped_at) STORED,
    note       TEXT COLLATE "C"
) PARTITION BY RANGE (stopped_at);

COMMENT ON COLUMN time_entries.stopped_at IS 'when the timer stopped';
COMMENT ON COLUMN time_entries.end_time IS 'when the timer stopped';
COMMENT ON TABLE timers IS 'running timers';

CREATE TRIGGER trg_stop BEFORE UPDATE OF stopped_at ON time_entries
    FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER trg_running BEFORE INSERT ON time_entries
    FOR EACH ROW WHEN (NEW.stopped_at IS NULL) EXECUTE FUNCTION touch();

GRANT SELECT, UPDATE (stopped_at) ON time_entries TO timetracker_app;
REVOKE SELECT ON archived_entries FROM timetracker_app;
GRANT USAGE ON SCHEMA public TO timetracker_app;
UPDATE time_entries SET end_time = now() WHERE end_time IS NULL RETURNING stopped_at;
DELETE FROM time_entries t WHERE t.id = 1 RETURNING t.stopped_at;
INSERT INTO time_entries (owner_id, task_id, start_time) VALUES (1, 1, now()) RETURNING stopped_at;
