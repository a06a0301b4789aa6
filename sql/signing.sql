-- signed requests: rotate_signing_secret(), the view signing_secrets,
-- delete_signing_secrets() and their errors; no role but the extension's
-- owner can read a secret (table, view, function result, error, pg_stats)
\i sql/include/error_of.sql
SELECT eventbus.put_rule('sig-rule', '{"source": ["com.example.sig"]}');
SELECT eventbus.put_target('sig-rule', 'sig-hook', 'https://hooks.example.com/sig');

-- a secret is returned once, in the specification's format
CREATE TEMP TABLE issued (secret text);
INSERT INTO issued SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook');
SELECT secret ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS whsec_base64,
	   length(decode(substr(secret, 7), 'base64')) AS key_bytes
FROM issued;
INSERT INTO issued SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook', grace => '1 hour');
SELECT count(DISTINCT secret) AS distinct_secrets FROM issued;

-- the view: metadata only; the fingerprint is the start of the SHA-256 of
-- the secret's text
SELECT attname FROM pg_attribute
WHERE attrelid = 'eventbus.signing_secrets'::regclass AND attnum > 0 ORDER BY attnum;
SELECT bus, rule, target_id, expires_at IS NULL AS current,
	   expires_at BETWEEN now() + interval '59 minutes' AND now() + interval '1 hour' AS ends_in_an_hour
FROM eventbus.signing_secrets ORDER BY created_at;
SELECT count(*) AS fingerprints_match FROM eventbus.signing_secrets s
JOIN issued i ON s.fingerprint = left(encode(sha256(convert_to(i.secret, 'UTF8')), 'hex'), 8);

-- errors
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('sig-rule', 'nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('no-rule', 'sig-hook')$$);
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook', bus => 'no-bus')$$);
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook', grace => '-1 minute')$$);
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook', grace => '8 days')$$);
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook', grace => NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.delete_signing_secrets('sig-rule', 'nope')$$);
SELECT count(*) AS still_two FROM eventbus.signing_secrets;
ANALYZE eventbus.signing_keys;

-- a publisher (README grants) and an operator (target management, and
-- SELECT on what it should see)
CREATE ROLE regress_eventbus_sig_app;
CREATE ROLE regress_eventbus_sig_ops;
GRANT USAGE ON SCHEMA eventbus TO regress_eventbus_sig_app, regress_eventbus_sig_ops;
GRANT EXECUTE ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz),
					  eventbus.put_events(jsonb) TO regress_eventbus_sig_app;
GRANT EXECUTE ON FUNCTION
	eventbus.put_target(text, text, text, text, text, jsonb, integer, interval, interval, jsonb, text, jsonb, integer),
	eventbus.remove_target(text, text, text),
	eventbus.rotate_signing_secret(text, text, text, interval),
	eventbus.delete_signing_secrets(text, text, text) TO regress_eventbus_sig_ops;
GRANT SELECT ON eventbus.targets, eventbus.dead_letters, eventbus.deliveries,
	eventbus.signing_secrets TO regress_eventbus_sig_ops;

SET ROLE regress_eventbus_sig_app;
SELECT pg_temp.error_of('SELECT key FROM eventbus.signing_keys');
SELECT pg_temp.error_of('SELECT * FROM eventbus.signing_secrets');
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook')$$);
SELECT pg_temp.error_of($$SELECT eventbus.delete_signing_secrets('sig-rule', 'sig-hook')$$);
SELECT pg_temp.error_of('SELECT * FROM eventbus.new_signing_secret()');
RESET ROLE;

SET ROLE regress_eventbus_sig_ops;
SELECT pg_temp.error_of('SELECT key FROM eventbus.signing_keys');
SELECT pg_temp.error_of('SELECT count(*) FROM eventbus.signing_keys');
SELECT pg_temp.error_of('SELECT * FROM eventbus.new_signing_secret()');
SELECT pg_temp.error_of($$SELECT eventbus.require_target('sig-rule', 'sig-hook', 'default')$$);
SELECT count(*) AS key_stats_visible FROM pg_stats
WHERE schemaname = 'eventbus' AND tablename = 'signing_keys';
SELECT count(*) AS signing_now FROM eventbus.signing_secrets;
-- everything the operator can read, kept to look for the secrets below
CREATE TEMP TABLE seen AS
SELECT (SELECT coalesce(json_agg(s), '[]')::text FROM eventbus.signing_secrets s)
	|| (SELECT coalesce(json_agg(t), '[]')::text FROM eventbus.targets t)
	|| (SELECT coalesce(json_agg(d), '[]')::text FROM eventbus.dead_letters d)
	|| (SELECT coalesce(json_agg(d), '[]')::text FROM eventbus.deliveries d) AS txt;
-- the operator may rotate: the new secret is its own to hand over, once
CREATE TEMP TABLE ops_issued AS
SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook', grace => '0') AS secret;
SELECT pg_temp.error_of($$SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook', grace => 'soon')$$);
INSERT INTO seen
SELECT (SELECT coalesce(json_agg(s), '[]')::text FROM eventbus.signing_secrets s)
	|| (SELECT coalesce(json_agg(t), '[]')::text FROM eventbus.targets t);
SELECT count(*) AS signing_after_grace_0 FROM eventbus.signing_secrets;
SELECT eventbus.delete_signing_secrets('sig-rule', 'sig-hook') AS deleted;
RESET ROLE;

SELECT count(*) AS secrets_seen_by_operator FROM seen, issued
WHERE strpos(seen.txt, substr(issued.secret, 7)) > 0;
SELECT count(*) AS own_secret_seen_again FROM seen, ops_issued
WHERE strpos(seen.txt, substr(ops_issued.secret, 7)) > 0;
SELECT count(*) AS keys_left FROM eventbus.signing_keys;

-- secrets go with their target
SELECT eventbus.rotate_signing_secret('sig-rule', 'sig-hook') IS NOT NULL AS rotated;
SELECT eventbus.remove_target('sig-rule', 'sig-hook');
SELECT count(*) AS keys_after_remove FROM eventbus.signing_keys;

DROP TABLE seen, ops_issued, issued;
SELECT eventbus.delete_rule('sig-rule');
DROP OWNED BY regress_eventbus_sig_app, regress_eventbus_sig_ops;
DROP ROLE regress_eventbus_sig_app, regress_eventbus_sig_ops;
