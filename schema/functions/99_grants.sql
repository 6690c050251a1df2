-- 99_grants.sql: who may call the functions, applied after all of them.
--
-- kipd serves as a member of the NOLOGIN group role kipd_runtime (created
-- by migrations/009_audit.sql; docs/audit.md). It may call every function;
-- the default privileges of 009 give new functions the same grant, and this
-- says it where the functions live.
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA kip, kip_api TO kipd_runtime;
