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
