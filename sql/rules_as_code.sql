-- rules as code: export() and apply(document, prune, dry_run), their
-- document, errors (22023 with the JSON path in DETAIL), masked headers,
-- signing, and that PUBLIC may call neither
\i sql/include/error_of.sql
SELECT eventbus.create_event_bus('code-orders');
SELECT eventbus.put_rule('code-placed', '{"source": ["com.example.orders"]}', bus => 'code-orders',
						 description => 'every order');
SELECT eventbus.put_target('code-placed', 'fulfil', 'https://fulfil.example.com/hook', bus => 'code-orders',
	headers => '{"Authorization": "Bearer s3cret", "X-Team": "ops"}',
	max_retry_attempts => 3, max_event_age => '1 hour', timeout => '2 seconds');
SELECT eventbus.put_target('code-placed', 'audit', 'http://127.0.0.1:9/audit', bus => 'code-orders',
	http_method => 'put');
SELECT eventbus.rotate_signing_secret('code-placed', 'audit', bus => 'code-orders') IS NOT NULL AS signed;

-- the document: header values masked, no secret, fingerprints only
-- (the fingerprint is random: shown as "(random)")
SELECT jsonb_pretty(jsonb_set(eventbus.export('code-orders'),
	'{buses,0,rules,0,targets,0,signing,fingerprints,0}', '"(random)"'));
SELECT (SELECT fingerprint FROM eventbus.signing_secrets WHERE target_id = 'audit')
	= eventbus.export('code-orders') #>> '{buses,0,rules,0,targets,0,signing,fingerprints,0}' AS fingerprint_exported;
SELECT eventbus.export('code-orders', header_values => true)
	#> '{buses,0,rules,0,targets,1,headers}' AS header_values;
SELECT jsonb_path_query_array(eventbus.export(), '$.buses[*].name') @> '["code-orders", "default"]' AS all_buses;
-- the settings come from one list: put_target's arguments that are columns of targets
SELECT name, type, json_type FROM eventbus.code_settings('target') ORDER BY ord;
SELECT name, type, json_type FROM eventbus.code_settings('rule') ORDER BY ord;

-- applying what is there changes nothing (masked values keep the stored ones)
SELECT eventbus.apply(eventbus.export()) AS unchanged;
SELECT eventbus.apply(eventbus.export(header_values => true)) AS unchanged;
SELECT updated_at = created_at AS never_updated FROM eventbus.targets WHERE target_id = 'fulfil';

-- a changed document: exactly what differs, and dry_run says the same and
-- changes nothing.  The other tests' buses stay in the document as they are
-- (pg_temp.doc_with puts the bus "code-orders" of table doc into export()).
CREATE TEMP TABLE doc AS SELECT eventbus.export('code-orders') -> 'buses' -> 0 AS b;
CREATE FUNCTION pg_temp.doc_with(extra jsonb DEFAULT '[]') RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_set(eventbus.export(), '{buses}',
		(SELECT jsonb_agg(x.b ORDER BY x.b ->> 'name' COLLATE "C")
		 FROM (SELECT o.b FROM jsonb_array_elements(eventbus.export() -> 'buses') o(b)
			   WHERE o.b ->> 'name' NOT LIKE 'code-%'
			   UNION ALL SELECT d.b FROM doc d
			   UNION ALL SELECT e.b FROM jsonb_array_elements(extra) e(b)) x))
$$;
UPDATE doc SET b = jsonb_set(b, '{rules,0,targets,1,max_retry_attempts}', '5');
UPDATE doc SET b = jsonb_set(b, '{rules,0,state}', '"disabled"');
UPDATE doc SET b = jsonb_insert(b, '{rules,1}',
	'{"name": "code-shipped", "event_pattern": {"detail-type": ["Shipped"]},
	  "targets": [{"target_id": "mail", "endpoint": "https://mail.example.com/", "timeout": "3 seconds"}]}');
SELECT jsonb_pretty(eventbus.apply(pg_temp.doc_with('[{"name": "code-new"}]'), dry_run => true)) AS would_change;
SELECT count(*) AS code_buses, (SELECT state FROM eventbus.rules WHERE name = 'code-placed') AS state
FROM eventbus.buses WHERE name LIKE 'code-%';
SELECT jsonb_pretty(eventbus.apply(pg_temp.doc_with('[{"name": "code-new"}]'))) AS changed;
SELECT name, state FROM eventbus.rules WHERE bus = 'code-orders' ORDER BY name;
SELECT target_id, max_retry_attempts, timeout, headers FROM eventbus.targets
WHERE bus = 'code-orders' ORDER BY target_id;
SELECT eventbus.apply(pg_temp.doc_with('[{"name": "code-new"}]')) AS second_time_nothing;
-- a document leaves out a setting: put_target's default
UPDATE doc SET b = b #- '{rules,0,targets,1,max_retry_attempts}';
SELECT eventbus.apply(pg_temp.doc_with('[{"name": "code-new"}]')) AS back_to_default;
SELECT max_retry_attempts FROM eventbus.targets WHERE target_id = 'fulfil';

-- prune: deletes what the document does not name, targets first, never
-- "default"; deleting a target dead-letters its pending deliveries
SELECT eventbus.put_rule('code-stray', '{"source": ["stray"]}', bus => 'code-orders');
SELECT eventbus.put_target('code-stray', 'stray', 'https://stray.example.com/', bus => 'code-orders');
SELECT eventbus.put_event('stray', 'Stray', '{}', bus => 'code-orders') IS NOT NULL AS published;
SELECT eventbus.put_event('stray', 'Stray', '{}', bus => 'code-orders') IS NOT NULL AS published;
SELECT jsonb_pretty(eventbus.apply(pg_temp.doc_with(), prune => true, dry_run => true)) AS would_prune;
SELECT count(*) AS still_pending FROM eventbus.deliveries WHERE target_id = 'stray';
SELECT count(*) AS no_dead_letter_yet FROM eventbus.dead_letters WHERE target_id = 'stray';
SELECT count(*) AS code_new_still_there FROM eventbus.buses WHERE name = 'code-new';
SELECT jsonb_pretty(eventbus.apply(pg_temp.doc_with(), prune => true)) AS pruned;
SELECT count(*) AS dead_lettered FROM eventbus.dead_letters WHERE target_id = 'stray';
SELECT bus, name FROM eventbus.rules WHERE bus LIKE 'code-%' ORDER BY 1, 2;
SELECT eventbus.apply(pg_temp.doc_with(), prune => true) AS second_time_nothing;
SELECT eventbus.apply('{"version": 1, "buses": [{"name": "default"}]}', prune => true, dry_run => true)
	@> '[{"action": "delete", "kind": "bus", "name": "code-orders"}]' AS prune_covers_every_bus;

-- a signed target in the document but not here: a NOTICE, never a secret
SELECT eventbus.delete_signing_secrets('code-placed', 'audit', bus => 'code-orders');
UPDATE doc SET b = jsonb_set(b, '{rules,0,targets,0,signing}', '{"signed": true, "fingerprints": ["00000000"]}');
SELECT eventbus.apply(pg_temp.doc_with()) AS nothing_changed;
SELECT count(*) AS no_secret_made FROM eventbus.signing_secrets WHERE target_id = 'audit';

-- errors: the whole document is checked before anything changes
SELECT pg_temp.error_of($$SELECT eventbus.apply(NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('[]')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"buses": []}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 2, "buses": []}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "extra": 1}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": {}}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [], "connections": [{"name": "c"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": 7}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a"}, {"name": "a"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r"}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": null}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}}, {"name": "r", "event_pattern": {"source": ["y"]}}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"detail": {"n": [{"numeric": [">", "ten"]}]}}}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "colour": "red"}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "targets": [{"target_id": "t", "endpoint": "http://x.example/", "max_retry_attempts": "3"}]}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "targets": [{"target_id": "t", "endpoint": "http://x.example/", "timeout": "soon"}]}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "targets": [{"target_id": "t", "endpoint": "http://x.example/"}, {"target_id": "t", "endpoint": "http://y.example/"}]}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "targets": [{"target_id": "t", "endpoint": "http://x.example/", "signing": {"secret": "whsec_x"}}]}]}]}')$$);
-- what put_rule and put_target judge: their errors, with the path
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "bad bus"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "targets": [{"target_id": "t", "endpoint": "http://x.example/", "max_retry_attempts": 999}]}]}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "targets": [{"target_id": "t", "endpoint": "ftp://x.example/"}]}]}]}')$$);
-- a masked header the target does not have here
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "a", "rules": [{"name": "r", "event_pattern": {"source": ["x"]}, "targets": [{"target_id": "t", "endpoint": "http://x.example/", "headers": {"Authorization": {"masked": true}}}]}]}]}')$$);
SELECT count(*) AS nothing_made FROM eventbus.buses WHERE name = 'a';
SELECT pg_temp.error_of($$SELECT eventbus.export('nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": []}', prune => NULL)$$);

-- a bus's retention travels with it: exported, created, changed, kept when
-- the document does not say, checked by create_event_bus/alter_event_bus
SELECT eventbus.create_event_bus('kept', retention => '3 days');
SELECT eventbus.export('kept') -> 'buses' -> 0 -> 'retention' AS exported;
SELECT eventbus.apply('{"version": 1, "buses": [{"name": "kept", "retention": "P3D"}]}') AS unchanged;
SELECT eventbus.apply('{"version": 1, "buses": [{"name": "kept", "retention": "P14D"}]}') AS changed;
SELECT eventbus.apply('{"version": 1, "buses": [{"name": "kept"}]}') AS left_alone;
SELECT eventbus.apply('{"version": 1, "buses": [{"name": "kept", "retention": null}]}') AS to_the_setting;
SELECT eventbus.apply('{"version": 1, "buses": [{"name": "born", "retention": "PT12H"}]}') AS created;
SELECT name, retention FROM eventbus.buses WHERE name IN ('kept', 'born') ORDER BY name;
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "kept", "retention": "soon"}]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": [{"name": "kept", "retention": "PT1S"}]}')$$);
SELECT eventbus.delete_event_bus('kept'), eventbus.delete_event_bus('born');

-- operators only: PUBLIC may call neither
CREATE ROLE regress_eventbus_code_app;
GRANT USAGE ON SCHEMA eventbus TO regress_eventbus_code_app;
SET ROLE regress_eventbus_code_app;
SELECT pg_temp.error_of($$SELECT eventbus.export()$$);
SELECT pg_temp.error_of($$SELECT eventbus.apply('{"version": 1, "buses": []}')$$);
RESET ROLE;
REVOKE USAGE ON SCHEMA eventbus FROM regress_eventbus_code_app;
DROP ROLE regress_eventbus_code_app;

-- leave the database as the other tests expect it
DELETE FROM doc;
SELECT jsonb_pretty(eventbus.apply(pg_temp.doc_with(), prune => true)) AS cleaned;
SELECT name FROM eventbus.buses ORDER BY name;
