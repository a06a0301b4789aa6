-- retention: eventbus.events is partitioned by published_at; maintenance()
-- creates partitions ahead and drops expired ones, never one that still has
-- a pending delivery; the default partition takes what no partition covers;
-- a redriven dead letter whose event expired carries its envelope.
\set VERBOSITY default
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v_state text; v_msg text; v_detail text; v_hint text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
		v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
	RETURN v_state || ': ' || v_msg || coalesce(' / ' || nullif(v_detail, ''), '')
		|| coalesce(' / ' || nullif(v_hint, ''), '');
END
$$;

SHOW eventbus.event_retention;
SELECT eventbus.event_retention_setting();

-- the shape: partitioned, a default partition, the contract's key
SELECT c.relkind, pg_get_partkeydef(c.oid) AS partition_key
FROM pg_class c WHERE c.oid = 'eventbus.events'::regclass;
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'eventbus.events'::regclass AND contype = 'p';
SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
WHERE attrelid = 'eventbus.deliveries'::regclass AND attname IN ('event_published_at', 'envelope')
ORDER BY attnum;

-- bad arguments
SELECT pg_temp.error_of($$SELECT eventbus.create_event_bus('r1', retention => '10 seconds')$$);
SELECT pg_temp.error_of($$SELECT eventbus.create_event_bus('r1', retention => '101 years')$$);
SELECT pg_temp.error_of($$SELECT eventbus.alter_event_bus('nope', '1 day')$$);
SELECT pg_temp.error_of($$SELECT eventbus.alter_event_bus('default', '-1 day')$$);
SELECT pg_temp.error_of($$SELECT * FROM eventbus.maintenance(NULL)$$);
SELECT pg_temp.error_of($$SELECT * FROM eventbus.maintenance('infinity')$$);

-- before any maintenance, events go to the default partition
SELECT eventbus.put_rule('ret', '{"source": ["ret.pending", "ret.dl"]}');
SELECT eventbus.put_target('ret', 't', 'http://127.0.0.1:9/');
SELECT eventbus.put_event('ret.early', 'x', '{}') IS NOT NULL AS published;
SELECT tableoid::regclass FROM eventbus.events WHERE source = 'ret.early';

-- a retention of an hour: partitions of 15 minutes, created ahead
SELECT eventbus.alter_event_bus('default', '1 hour');
SELECT name, retention FROM eventbus.buses;
SELECT action, count(*) >= 3 AS three_or_more, max(range_end - range_start) AS width
FROM eventbus.maintenance() GROUP BY action;
-- the first starts right after the default partition's last event
SELECT min(range_start) = (SELECT max(published_at) + interval '1 microsecond' FROM eventbus.events)
	   AS after_the_default
FROM eventbus.event_partitions;
-- a second run has nothing to do
SELECT count(*) AS actions FROM eventbus.maintenance();
-- the partitions cover the next 45 minutes without a gap
SELECT bool_and(p.range_end = n.range_start) AS contiguous,
	   max(n.range_end) >= now() + interval '45 minutes' AS ahead
FROM eventbus.event_partitions p
JOIN eventbus.event_partitions n ON n.range_start = (SELECT min(x.range_start) FROM eventbus.event_partitions x WHERE x.range_start > p.range_start);

-- new events go to a time partition, and their deliveries name it
SELECT eventbus.put_event('ret.a', 'x', '{}') IS NOT NULL AS published;
SELECT eventbus.put_event('ret.pending', 'x', '{}') IS NOT NULL AS published;
SELECT source, tableoid::regclass::text LIKE 'eventbus.events_p%' AS in_time_partition
FROM eventbus.events ORDER BY published_at;
SELECT d.event_published_at = e.published_at AS names_the_partition, d.envelope IS NULL AS no_envelope
FROM eventbus.deliveries d JOIN eventbus.events e ON e.id = d.event_id;

-- a bus that keeps its events a day keeps every shared partition a day
SELECT eventbus.create_event_bus('ret-long', retention => '1 day');
SELECT action FROM eventbus.maintenance(now() + interval '2 hours') WHERE action <> 'created';
SELECT count(*) AS events FROM eventbus.events;
SELECT eventbus.delete_event_bus('ret-long');

-- so does an archive
SELECT eventbus.create_archive('ret-archive', 'default', retention => '1 day');
SELECT action FROM eventbus.maintenance(now() + interval '2 hours') WHERE action <> 'created';
SELECT eventbus.delete_archive('ret-archive');

-- two hours on: the partition of the pending delivery's event is kept,
-- the expired row of the default partition is deleted
SELECT DISTINCT action, partition_name = 'events_default' AS default_partition, detail
FROM eventbus.maintenance(now() + interval '2 hours')
WHERE action <> 'created' ORDER BY action;
SELECT source FROM eventbus.events ORDER BY published_at;

-- once it settles, the partition is dropped, without a DELETE
DELETE FROM eventbus.deliveries;
SELECT DISTINCT action, detail FROM eventbus.maintenance(now() + interval '2 hours')
WHERE action <> 'created' ORDER BY action;
SELECT count(*) AS events FROM eventbus.events;
SELECT count(*) AS expired_partitions FROM eventbus.event_partitions
WHERE range_end <= now() + interval '1 hour';

-- a dead letter keeps its envelope; redriven after its event expired, the
-- delivery carries that envelope
SELECT eventbus.put_event('ret.dl', 'x', '{"k": 1}') AS dl_id \gset
SELECT eventbus.remove_target('ret', 't');
SELECT eventbus.put_target('ret', 't', 'http://127.0.0.1:9/');
SELECT error_code, event ->> 'source' AS source, event -> 'detail' AS detail FROM eventbus.dead_letters;
SELECT event AS dl_event FROM eventbus.dead_letters \gset
SELECT DISTINCT action FROM eventbus.maintenance(now() + interval '2 hours') WHERE action <> 'created';
SELECT count(*) AS events FROM eventbus.events WHERE id = :'dl_id';
SELECT eventbus.redrive_dead_letters();
SELECT d.event_id = :'dl_id' AS same_event, d.event_published_at,
	   d.envelope = :'dl_event'::jsonb AS dead_letters_envelope
FROM eventbus.deliveries d;
-- dead-lettered again, it keeps the same envelope
SELECT eventbus.remove_target('ret', 't');
SELECT count(*) AS dead_letters, bool_and(event ->> 'source' = 'ret.dl') AS with_envelope FROM eventbus.dead_letters;

-- clean up
SELECT eventbus.delete_rule('ret');
DELETE FROM eventbus.dead_letters;
SELECT eventbus.alter_event_bus('default', NULL);

-- a shorter retention narrows the partitions: the empty ones ahead are
-- made again at the new width
SELECT DISTINCT action, detail FROM eventbus.maintenance() WHERE action <> 'created';
SELECT eventbus.create_event_bus('ret-short', retention => '4 minutes');
SELECT DISTINCT action, detail FROM eventbus.maintenance() ORDER BY action;
SELECT max(range_end - range_start) AS widest_ahead FROM eventbus.event_partitions
WHERE range_start > now();
SELECT eventbus.delete_event_bus('ret-short');
