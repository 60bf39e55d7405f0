-- A sequence default on the schema's UUID key.
CREATE TABLE IF NOT EXISTS api_tokens (
    token    UUID PRIMARY KEY DEFAULT nextval('api_tokens_token_seq'),
    owner_id INTEGER NOT NULL REFERENCES users_web (id)
);
ALTER TABLE api_tokens ALTER COLUMN token SET DEFAULT nextval('api_tokens_token_seq'::regclass);
