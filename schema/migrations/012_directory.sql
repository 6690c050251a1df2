-- 012_directory: the colleague directory (GET /v1/directory,
-- daemon/api/directory.c, functions/20_directory.sql).
--
-- Each user's lookups are rate-limited with a token bucket: a row holds the
-- lookups left and when it was last filled. Rows are tiny and one per user
-- who ever looked someone up.
CREATE TABLE kip.directory_quota (
  user_id     uuid PRIMARY KEY REFERENCES kip.users (id),
  tokens      double precision NOT NULL CHECK (tokens >= 0),
  updated_at  timestamptz NOT NULL
);

-- The directory lists active users by name.
CREATE INDEX users_directory ON kip.users (lower(display_name), id) WHERE active;
