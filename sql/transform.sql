-- transform: input, input_path, input_transformer (EventBridge's Input,
-- InputPath, InputTransformer): AWS's documented examples, escaping, the
-- checks put_target runs when a target is saved, and the bounds.
\i sql/include/error_of.sql
\pset format unaligned
-- the EC2 event of AWS's "Amazon EventBridge input transformation" page
CREATE TEMP TABLE ev AS SELECT '{
	"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
	"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
	"account": "123456789012", "time": "2015-11-11T21:29:54Z", "region": "us-east-1",
	"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
	"detail": {"instance-id": "i-0123456789", "state": "RUNNING"}
}'::jsonb AS e;
-- and its input paths
CREATE TEMP TABLE pm AS SELECT '{"timestamp": "$.time", "instance": "$.detail.instance-id",
	"state": "$.detail.state", "resource": "$.resources[0]"}'::jsonb AS m;

-- AWS's examples (page table, then the API reference's): template, output
SELECT t AS template,
	eventbus.test_transform(e, jsonb_build_object('InputPathsMap', m, 'InputTemplate', t),
		'example', bus => 'default') AS output
FROM ev, pm, (VALUES
	('"instance <instance> is in <state>"'),
	('{"instance" : <instance>, "state": <state>}'),
	('{"instance" : <instance>, "state": [ 9, <state>, true ], "Transformed" : "Yes"}'),
	('{"instance" : <instance>, "state": <state>, "ruleArn" : <aws.events.rule-arn>, "ruleName" : <aws.events.rule-name>}'),
	('"<aws.events.rule-name> triggered"'),
	('<instance> is in state <state>'),
	('<instance> is in state "<state>"'),
	('{"myInstance": <instance>,"myStatus": "<instance> is in state \"<state>\""}')
) v(t);

-- <aws.events.event> is the event without its detail; .json the whole event
SELECT eventbus.test_transform(e, '{"InputTemplate": "{\"originalEvent\": <aws.events.event>}"}')::jsonb
	= jsonb_build_object('originalEvent', e - 'detail') AS event_without_detail,
	eventbus.test_transform(e, '{"InputTemplate": "{\"e\": <aws.events.event.json>}"}')::jsonb
	= jsonb_build_object('e', e) AS event_json,
	eventbus.test_transform(e, '{"InputTemplate": "\"<aws.events.event.ingestion-time>\""}') AS ingestion_time
FROM ev;
-- a rule of another bus: the ARN names the bus
SELECT eventbus.test_transform(e, '{"InputTemplate": "\"<aws.events.rule-arn>\""}', 'r1', 'orders')
FROM ev;

-- values are escaped inside JSON strings (EventBridge does not: its output breaks)
CREATE TEMP TABLE hostile AS SELECT '{"id": "1", "time": "2026-01-01T00:00:00Z",
	"detail": {"text": "say \"hi\"\\ and\nbye", "obj": {"a": [1, "x"]}, "n": 3.5, "b": false}}'::jsonb AS e;
SELECT eventbus.test_transform(e, '{"InputPathsMap": {"t": "$.detail.text", "o": "$.detail.obj",
	"n": "$.detail.n", "b": "$.detail.b"},
	"InputTemplate": "{\"s\": \"<t>\", \"in\": \"o=<o> n=<n> b=<b>\", \"raw\": <t>, \"obj\": <o>, \"n\": <n>}"}') AS escaped
FROM hostile;
SELECT eventbus.test_transform(e, '{"InputPathsMap": {"t": "$.detail.text", "o": "$.detail.obj",
	"n": "$.detail.n", "b": "$.detail.b"},
	"InputTemplate": "{\"s\": \"<t>\", \"in\": \"o=<o> n=<n> b=<b>\", \"raw\": <t>, \"obj\": <o>, \"n\": <n>}"}')::jsonb IS NOT NULL AS is_json
FROM hostile;
-- a plain-text template gets the text as it is
SELECT eventbus.test_transform(e, '{"InputPathsMap": {"t": "$.detail.text"}, "InputTemplate": "text: <t>"}') AS plain
FROM hostile;
-- array indexes and nested paths
SELECT eventbus.test_transform(e, '{"InputPathsMap": {"x": "$.detail.obj.a[1]", "y": "$.detail.obj.a[0]", "all": "$"},
	"InputTemplate": "[<x>, <y>, \"<all>\"]"}')
FROM hostile;

-- a path missing from the event: empty (EventBridge's way), null, or a dead letter
SELECT m AS missing_path, eventbus.test_transform(e, jsonb_build_object(
	'InputPathsMap', '{"a": "$.detail.nope", "i": "$.resources[5]"}'::jsonb, 'MissingPath', m,
	'InputTemplate', '{"whole": "<a>", "part": "x<a>y", "bare": <a>, "idx": <i>}')) AS output
FROM ev, (VALUES ('empty'), ('null')) v(m);
SELECT eventbus.test_transform(e, '{"InputPathsMap": {"a": "$.detail.nope"}, "InputTemplate": "<a>!"}') AS plain_missing
FROM ev;
SELECT pg_temp.error_of($$SELECT eventbus.test_transform(e, '{"InputPathsMap": {"a": "$.detail.nope"},
	"MissingPath": "dead-letter", "InputTemplate": "{\"a\": <a>}"}') FROM ev$$);

-- rejected when checked, with what is wrong and how to fix it
SELECT pg_temp.error_of(format($$SELECT eventbus.test_transform('{}', %L)$$, t))
FROM (VALUES
	('[]'),
	('{"InputPathsMap": {}}'),
	('{"InputTemplate": ""}'),
	('{"InputTemplate": "x", "Extra": 1}'),
	('{"InputTemplate": "x", "MissingPath": "skip"}'),
	('{"InputPathsMap": [], "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": 1}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a b": "$.x"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"AWS.events.x": "$.x"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "detail.x"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "$..x"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "$.detail.*"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "$.items[*]"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "$[''detail'']"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "$.items[-1]"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "$.items[0"}, "InputTemplate": "x"}'),
	('{"InputPathsMap": {"a": "$.x"}, "InputTemplate": "<b> is undefined"}'),
	('{"InputPathsMap": {"k": "$.x"}, "InputTemplate": "{<k>: 1}"}'),
	('{"InputPathsMap": {"k": "$.x"}, "InputTemplate": "{\"<k>\": 1}"}'),
	('{"InputPathsMap": {"k": "$.x"}, "InputTemplate": "{\"pre-<k>\" : 1}"}'),
	('{"InputPathsMap": {"k": "$.x"}, "InputTemplate": "{\"a\": <k>"}'),
	('{"InputPathsMap": {"k": "$.x"}, "InputTemplate": "{\"a\": <k> <k>}"}'),
	('{"InputTemplate": "[1, 2,]"}')
) v(t);

-- EventBridge's bounds: 100 variables, 8,192 characters, paths of 256
SELECT eventbus.test_transform('{"detail": {}}', jsonb_build_object(
	'InputPathsMap', (SELECT jsonb_object_agg('v' || g, '$.detail.v' || g) FROM generate_series(1, 100) g),
	'InputTemplate', '"' || repeat('é', 8190) || '"')) = '"' || repeat('é', 8190) || '"' AS at_the_bounds;
SELECT pg_temp.error_of(format($$SELECT eventbus.test_transform('{}', %L)$$, t))
FROM (VALUES
	(jsonb_build_object('InputPathsMap', (SELECT jsonb_object_agg('v' || g, '$.x') FROM generate_series(1, 101) g),
		'InputTemplate', 'x')),
	(jsonb_build_object('InputTemplate', repeat('x', 8193))),
	(jsonb_build_object('InputPathsMap', jsonb_build_object('a', '$.' || repeat('x', 255)), 'InputTemplate', 'x'))
) v(t);
-- the output is bounded: 4 x eventbus.max_event_size
SET eventbus.max_event_size = 1024;
SELECT pg_temp.error_of($$SELECT eventbus.test_transform(jsonb_build_object('detail', repeat('x', 1000)),
	jsonb_build_object('InputPathsMap', '{"d": "$.detail"}'::jsonb, 'InputTemplate', repeat('<d>', 5)))$$);
RESET eventbus.max_event_size;

-- put_target stores one transformation and checks it when the target is saved
SELECT eventbus.put_rule('tr', '{"source": ["com.example.tr"]}');
SELECT eventbus.put_target('tr', 'const', 'http://127.0.0.1:9/', input => '{"fixed": true}');
SELECT eventbus.put_target('tr', 'path', 'http://127.0.0.1:9/', input_path => '$.detail');
SELECT eventbus.put_target('tr', 'tpl', 'http://127.0.0.1:9/',
	input_transformer => '{"InputPathsMap": {"s": "$.detail.state"}, "InputTemplate": "{\"state\": <s>}"}');
SELECT target_id, input, input_path, input_transformer FROM eventbus.targets WHERE rule = 'tr' ORDER BY 1;
SELECT pg_temp.error_of(q) FROM (VALUES
	($$SELECT eventbus.put_target('tr', 'two', 'http://127.0.0.1:9/', input => '1', input_path => '$')$$),
	($$SELECT eventbus.put_target('tr', 'jnull', 'http://127.0.0.1:9/', input => 'null')$$),
	($$SELECT eventbus.put_target('tr', 'badpath', 'http://127.0.0.1:9/', input_path => '$.detail[*]')$$),
	($$SELECT eventbus.put_target('tr', 'badkey', 'http://127.0.0.1:9/',
		input_transformer => '{"InputPathsMap": {"k": "$.x"}, "InputTemplate": "{<k>: 1}"}')$$),
	($$SELECT eventbus.put_target('tr', 'undef', 'http://127.0.0.1:9/',
		input_transformer => '{"InputTemplate": "{\"a\": <nope>}"}')$$),
	($$SELECT eventbus.put_target('tr', 'notjson', 'http://127.0.0.1:9/',
		input_transformer => '{"InputPathsMap": {"k": "$.x"}, "InputTemplate": "{\"a\": \"<k>\" \"b\"}"}')$$)
) v(q);
SELECT count(*) AS not_saved FROM eventbus.targets WHERE rule = 'tr' AND target_id NOT IN ('const', 'path', 'tpl');
-- replacing a target replaces its transformation
SELECT eventbus.put_target('tr', 'tpl', 'http://127.0.0.1:9/');
SELECT target_id, input_transformer IS NULL AS none FROM eventbus.targets WHERE target_id = 'tpl';
SELECT eventbus.delete_rule('tr');
