-- connections: put_connection() for each auth type and its errors, the
-- masked view eventbus.connections, deauthorize_connection(),
-- delete_connection(), put_target(..., connection => ...); no role but the
-- extension's owner can read a secret (table, view, function result,
-- error message)
\i sql/include/error_of.sql

SELECT eventbus.put_connection('conn-key', 'API_KEY',
	'{"api_key_name": "X-Api-Key", "api_key_value": "sekrit-api-key"}',
	'{"header_parameters": [{"key": "X-Team", "value": "blue"},
							{"key": "X-Sig", "value": "sekrit-header", "is_value_secret": true}],
	  "query_string_parameters": [{"key": "region", "value": "eu"},
								  {"key": "token", "value": "sekrit-query", "is_value_secret": true}],
	  "body_parameters": [{"key": "tenant", "value": "sekrit-body", "is_value_secret": true}]}');
SELECT eventbus.put_connection('conn-basic', 'basic',
	'{"username": "alice", "password": "sekrit-password"}');
SELECT eventbus.put_connection('conn-oauth', 'OAUTH_CLIENT_CREDENTIALS',
	'{"authorization_endpoint": "https://login.example.com/oauth2/token",
	  "http_method": "POST",
	  "client_parameters": {"client_id": "client-1", "client_secret": "sekrit-client"},
	  "oauth_http_parameters": {"body_parameters": [{"key": "scope", "value": "events"},
	                                                {"key": "audience", "value": "sekrit-aud", "is_value_secret": true}]}}');
SELECT eventbus.put_connection('conn-none', 'NONE', '{}',
	'{"header_parameters": [{"key": "X-Env", "value": "test"}]}');

-- the view: everything but the secrets, which are masked
SELECT name, auth_type, auth, http_parameters, state, state_reason,
	   state_changed_at IS NOT NULL AS changed, token_expires_at
FROM eventbus.connections ORDER BY name;
SELECT count(*) AS secrets_in_view FROM eventbus.connections c
WHERE c::text ~ 'sekrit';

-- states: deauthorize, then authorize anew by putting it again
SELECT eventbus.deauthorize_connection('conn-basic');
SELECT name, state, state_reason FROM eventbus.connections WHERE name = 'conn-basic';
SELECT eventbus.connection_blocks('conn-basic') AS blocks,
	   eventbus.connection_blocks('conn-key') AS key_blocks,
	   eventbus.connection_blocks('conn-oauth') AS oauth_without_token_blocks,
	   eventbus.connection_blocks(NULL) AS none_blocks;
SELECT eventbus.put_connection('conn-basic', 'BASIC',
	'{"username": "alice", "password": "sekrit-password"}');
SELECT name, state FROM eventbus.connections WHERE name = 'conn-basic';

-- targets use connections
SELECT eventbus.put_rule('conn-rule', '{"source": ["com.example.conn"]}');
SELECT eventbus.put_target('conn-rule', 'conn-hook', 'https://hooks.example.com/c', connection => 'conn-key');
SELECT target_id, connection FROM eventbus.targets WHERE rule = 'conn-rule';
SELECT pg_temp.error_of($$SELECT eventbus.put_target('conn-rule', 'h2', 'https://hooks.example.com/c', connection => 'nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.delete_connection('conn-key')$$);
SELECT pg_temp.error_of($$SELECT eventbus.delete_connection('nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.deauthorize_connection('nope')$$);
SELECT eventbus.delete_connection('conn-none');
SELECT count(*) AS none_left FROM eventbus.connections WHERE name = 'conn-none';
-- the endpoint rule is one function, shared with put_target
SELECT pg_temp.error_of($$SELECT eventbus.put_target('conn-rule', 'h3', 'ftp://hooks.example.com/c')$$);

-- errors: SQLSTATE, message, detail, hint; never a value
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad name', 'NONE', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'DIGEST', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', NULL, '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '[]')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"api_key_name": "X-Key"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"api_key_name": "X-Key", "api_key_value": 7}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"api_key_name": "X-Key", "api_key_value": ""}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"apiKeyName": "X-Key", "api_key_value": "v"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"api_key_name": "X Key", "api_key_value": "sekrit"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"api_key_name": "X-Key", "api_key_value": "sek\rrit"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"api_key_name": "Content-Length", "api_key_value": "sekrit"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'BASIC', '{"username": "a:b", "password": "sekrit"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'BASIC', '{"username": "a", "password": "sek\nrit"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'OAUTH_CLIENT_CREDENTIALS', '{"authorization_endpoint": "not a url", "client_parameters": {"client_id": "a", "client_secret": "sekrit"}}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'OAUTH_CLIENT_CREDENTIALS', '{"authorization_endpoint": "https://x.example.com/t", "http_method": "DELETE", "client_parameters": {"client_id": "a", "client_secret": "sekrit"}}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'OAUTH_CLIENT_CREDENTIALS', '{"authorization_endpoint": "https://x.example.com/t"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'OAUTH_CLIENT_CREDENTIALS', '{"authorization_endpoint": "https://x.example.com/t", "client_parameters": {"client_id": "a"}}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{"username": "a"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"headers": []}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"header_parameters": {"key": "a"}}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"query_string_parameters": [{"value": "sekrit"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"body_parameters": [{"key": "k", "value": "sekrit", "is_value_secret": "yes"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"header_parameters": [{"key": "X-A", "value": "sekrit"}, {"key": "x-a", "value": "sekrit"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"header_parameters": [{"key": "webhook-id", "value": "sekrit"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"header_parameters": [{"key": "X-A", "value": "sek\u007frit"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'BASIC', '{"username": "a", "password": "sekrit"}', '{"header_parameters": [{"key": "authorization", "value": "sekrit"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('bad', 'API_KEY', '{"api_key_name": "X-Key", "api_key_value": "sekrit"}', '{"header_parameters": [{"key": "x-key", "value": "sekrit"}]}')$$);
SELECT pg_temp.error_of(format($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"header_parameters": [{"key": "X-Long", "value": "%s"}]}')$$, repeat('x', 513)));
SELECT pg_temp.error_of(format($$SELECT eventbus.put_connection('bad', 'NONE', '{}', '{"body_parameters": %s}')$$,
	(SELECT jsonb_agg(jsonb_build_object('key', 'k' || g, 'value', 'v')) FROM generate_series(1, 101) g)));
SELECT count(*) AS bad_left_behind FROM eventbus.connections WHERE name = 'bad';

-- a publisher (README grants) and an operator (connections and targets,
-- and SELECT on what it should see)
CREATE ROLE regress_eventbus_conn_app;
CREATE ROLE regress_eventbus_conn_ops;
GRANT USAGE ON SCHEMA eventbus TO regress_eventbus_conn_app, regress_eventbus_conn_ops;
GRANT EXECUTE ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz),
					  eventbus.put_events(jsonb) TO regress_eventbus_conn_app;
GRANT EXECUTE ON FUNCTION
	eventbus.put_target,
	eventbus.put_connection(text, text, jsonb, jsonb),
	eventbus.deauthorize_connection(text),
	eventbus.delete_connection(text) TO regress_eventbus_conn_ops;
GRANT SELECT ON eventbus.targets, eventbus.dead_letters, eventbus.deliveries,
	eventbus.connections TO regress_eventbus_conn_ops;

SET ROLE regress_eventbus_conn_app;
SELECT pg_temp.error_of('SELECT * FROM eventbus.connection_secrets');
SELECT pg_temp.error_of('SELECT * FROM eventbus.connections');
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('x', 'NONE', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.deauthorize_connection('conn-key')$$);
RESET ROLE;

ANALYZE eventbus.connection_secrets;
SET ROLE regress_eventbus_conn_ops;
SELECT pg_temp.error_of('SELECT auth FROM eventbus.connection_secrets');
SELECT pg_temp.error_of('SELECT access_token FROM eventbus.connection_secrets');
SELECT count(*) AS ops_sees, bool_or(c::text ~ 'sekrit') AS ops_sees_a_secret FROM eventbus.connections c;
-- no function returns a secret, and the worker's token cache is the worker's
SELECT count(*) AS stats_seen FROM pg_stats WHERE tablename = 'connection_secrets';
SELECT pg_temp.error_of('SELECT * FROM eventbus.connection_token_begin()');
SELECT pg_temp.error_of($$SELECT eventbus.connection_token_end('conn-oauth', 1, 'tok', 60, NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.connection_token_rejected('conn-oauth', 0)$$);
SELECT pg_temp.error_of('SELECT eventbus.expire_held_deliveries()');
SELECT pg_temp.error_of($$SELECT eventbus.check_connection('x', 'NONE', '{}', '{}')$$);
-- an error caused on purpose does not echo the secret it was given
SELECT pg_temp.error_of($$SELECT eventbus.put_connection('conn-key', 'API_KEY', '{"api_key_name": "X-Api-Key", "api_key_value": "sekrit\u0001"}')$$) ~ 'sekrit' AS error_echoes_secret;
-- the operator manages connections and targets
SELECT eventbus.put_target('conn-rule', 'conn-hook2', 'https://hooks.example.com/c2', connection => 'conn-basic');
SELECT eventbus.deauthorize_connection('conn-oauth');
SELECT name, state FROM eventbus.connections ORDER BY name;
RESET ROLE;
-- the operator's failed put left the connection as it was
SELECT count(*) AS key_unchanged FROM eventbus.connection_secrets
WHERE name = 'conn-key' AND auth ->> 'api_key_value' = 'sekrit-api-key';

-- the table holds the secrets for the worker; a put keeps nothing old
SELECT name, auth_type, revision, access_token FROM eventbus.connection_secrets ORDER BY name;

-- rules as code: a target's connection is exported by name, the
-- connections with their secrets masked; apply() keeps a masked secret
SELECT jsonb_path_query(eventbus.export(), '$.buses[*].rules[*].targets[*].connection') AS exported_connection;
SELECT jsonb_pretty(eventbus.export() -> 'connections') AS exported_connections;
SELECT eventbus.export()::text ~ 'sekrit' AS export_holds_a_secret;
SELECT eventbus.apply(eventbus.export()) AS round_trip_changes;
SELECT eventbus.apply(jsonb_set(eventbus.export(), '{connections,1,http_parameters,header_parameters,0,value}', '"green"'))
	AS changed_a_parameter;
SELECT auth ->> 'api_key_value' AS key_kept, http_parameters #>> '{header_parameters,0,value}' AS team,
	   http_parameters #>> '{header_parameters,1,value}' AS secret_kept
FROM eventbus.connection_secrets WHERE name = 'conn-key';
SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "conn-new", "auth_type": "BASIC",
	"auth": {"username": "u", "password": "sekrit-new"}}]}', dry_run => true) AS dry_run;
SELECT count(*) AS dry_run_made_nothing FROM eventbus.connection_secrets WHERE name = 'conn-new';
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "conn-new", "auth_type": "BASIC",
	"auth": {"username": "u", "password": {"masked": true}}}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "conn-key", "auth_type": "API_KEY",
	"auth": {"api_key_name": "X-Api-Key", "api_key_value": {"masked": true}},
	"http_parameters": {"header_parameters": [{"key": "X-Other", "value": {"masked": true}, "is_value_secret": true}]}}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "c"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "c", "auth_type": "NONE", "auth": "sekrit"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "c", "auth_type": "NONE", "auth": {}, "state": "x"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "c", "auth_type": "NONE", "auth": {}},
	{"name": "c", "auth_type": "NONE", "auth": {}}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "c", "auth_type": "DIGEST", "auth": {}}]}')$$);

SELECT eventbus.delete_rule('conn-rule');
SELECT eventbus.delete_connection('conn-key');
SELECT eventbus.delete_connection('conn-basic');
SELECT eventbus.delete_connection('conn-oauth');
DROP OWNED BY regress_eventbus_conn_app, regress_eventbus_conn_ops;
DROP ROLE regress_eventbus_conn_app, regress_eventbus_conn_ops;
