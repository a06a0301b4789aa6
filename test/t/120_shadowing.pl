# No code of a user's runs with the extension owner's rights.
#
# An attacker role with the README's publisher grants (and EXECUTE on
# capture()), CREATE on public and a schema of its own, shadows in public, in
# its schema and in pg_temp every function, aggregate and operator that the
# owner-rights code calls by name, plus the extension's relation names.
# Each shadow calls a tripwire that records where it ran (which role, in
# which kind of backend), says so in the server log and tries to make the
# attacker superuser.  Then everything is exercised: put_event, put_events,
# capture() on a table whose column type (an enum of the attacker's) has a
# cast to json of the attacker's, rules and targets, delivery, retries, a
# dead letter, a redrive, a target's deletion and a scheduled rule fired by
# the maintenance process.  Nothing shadowed may
# run, and the attacker must not be superuser; the attacker's own cast runs,
# but only with the attacker's rights.
#
# How the list of shadows was derived: by reading every statement that runs
# with the owner's rights -- the SECURITY DEFINER functions of
# pg_eventbus--0.1.0.sql (put_events, check_entry, put_rule, put_target,
# delete_rule, set_rule_state, remove_target, redrive_dead_letters,
# create_event_bus, delete_event_bus, dead_letter_deleted_target), the
# envelope() function inlined into the worker's statements, and the SQL the
# C code runs (src/publish.c, src/match_trigger.c, src/rule_cache.c, and the
# worker's src/queue.c) -- and taking every function, aggregate and operator
# called there by an unqualified name, with the argument types of the call.
# Where pg_catalog's version is polymorphic or variadic (cardinality,
# format, jsonb_build_object, jsonb_build_array, unnest, array_position,
# array_agg, to_jsonb), a shadow with the call's exact argument types is a
# better match than pg_catalog's for a session that can see it: those are
# the shadows that catch an unpinned search_path.  Same-signature shadows
# (now, length, =, ||, ...) would catch a search_path that puts pg_catalog
# after a user's schema.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('shadowing');

# The test's own queries must not run the shadows either.
sub sq
{
	my ($sql) = @_;
	return $node->safe_psql('postgres',
		"SET search_path = pg_catalog, pg_temp;\n$sql");
}

# [name, argument types, return type (SETOF ... for set-returning), kind]
my @functions = (
	[ 'cardinality', 'text[]', 'integer' ],
	[ 'format', 'text, text', 'text' ],
	[ 'format', 'text, integer', 'text' ],
	[ 'format', 'text, text, text', 'text' ],
	[ 'format', 'text, bigint, bigint', 'text' ],
	[ 'format', 'text, text, bigint', 'text' ],
	[ 'format', 'text, text, text, text', 'text' ],
	[ 'format', 'text, text, text, text, text', 'text' ],
	[ 'jsonb_build_object', 'text, uuid', 'jsonb' ],
	[ 'jsonb_build_object', 'text, text', 'jsonb' ],
	[ 'jsonb_build_object', 'text, text, text, text', 'jsonb' ],
	[ 'jsonb_build_object', 'text, integer, text, jsonb', 'jsonb' ],
	[ 'jsonb_build_array', 'jsonb', 'jsonb' ],
	[ 'to_jsonb', 'text[]', 'jsonb' ],
	[ 'to_jsonb', 'record', 'jsonb' ],
	[ 'array_position', 'text[], text', 'integer' ],
	[ 'unnest', 'bigint[]', 'SETOF bigint' ],
	[ 'unnest', 'text[]', 'SETOF text' ],
	[ 'unnest', 'tid[]', 'SETOF tid' ],
	[ 'unnest', 'timestamptz[]', 'SETOF timestamptz' ],
	[ 'unnest', 'integer[]', 'SETOF integer' ],
	[ 'jsonb_typeof', 'jsonb', 'text' ],
	[ 'jsonb_array_length', 'jsonb', 'integer' ],
	[ 'jsonb_array_elements', 'jsonb', 'SETOF jsonb' ],
	[ 'jsonb_array_elements_text', 'jsonb', 'SETOF text' ],
	[ 'jsonb_each', 'jsonb', 'TABLE(key text, value jsonb)' ],
	[ 'jsonb_each_text', 'jsonb', 'TABLE(key text, value text)' ],
	[ 'length', 'text', 'integer' ],
	[ 'octet_length', 'text', 'integer' ],
	[ 'upper', 'text', 'text' ],
	[ 'lower', 'text', 'text' ],
	[ 'regexp_replace', 'text, text, text', 'text' ],
	[ 'current_setting', 'text', 'text' ],
	[ 'to_timestamp', 'double precision', 'timestamptz' ],
	[ 'to_char', 'timestamp, text', 'text' ],
	[ 'timezone', 'text, timestamptz', 'timestamp' ],
	[ 'now', '', 'timestamptz' ],
	[ 'clock_timestamp', '', 'timestamptz' ],
	[ 'gen_random_uuid', '', 'uuid' ],
	[ 'date_part', 'text, interval', 'double precision' ],
	[ 'extract', 'text, interval', 'numeric' ],);

# [name, input type, state type, final result]: aggregates
my @aggregates = (
	[ 'array_agg', 'text', 'text[]' ],
	[ 'string_agg', 'text, text', 'text' ],
	[ 'sum', 'integer', 'bigint' ],
	[ 'min', 'timestamptz', 'timestamptz' ],
	[ 'count', 'text', 'bigint' ],
	[ 'count', '*', 'bigint' ],);

# [operator, left, right, result]
my @operators = (
	[ '=', 'text', 'text', 'boolean' ],
	[ '<>', 'text', 'text', 'boolean' ],
	[ '=', 'uuid', 'uuid', 'boolean' ],
	[ '=', 'bigint', 'bigint', 'boolean' ],
	[ '=', 'tid', 'tid', 'boolean' ],
	[ '=', 'timestamptz', 'timestamptz', 'boolean' ],
	[ '<=', 'timestamptz', 'timestamptz', 'boolean' ],
	[ '>=', 'timestamptz', 'timestamptz', 'boolean' ],
	[ '<', 'timestamptz', 'timestamptz', 'boolean' ],
	[ '>', 'bigint', 'bigint', 'boolean' ],
	[ '>=', 'bigint', 'bigint', 'boolean' ],
	[ '<>', 'jsonb', 'jsonb', 'boolean' ],
	[ '||', 'text', 'text', 'text' ],
	[ '||', 'jsonb', 'jsonb', 'jsonb' ],
	[ '->', 'jsonb', 'text', 'jsonb' ],
	[ '->>', 'jsonb', 'text', 'text' ],
	[ '->>', 'jsonb', 'integer', 'text' ],
	[ '?', 'jsonb', 'text', 'boolean' ],
	[ '~', 'text', 'text', 'boolean' ],
	[ '!~', 'text', 'text', 'boolean' ],
	[ '!~*', 'text', 'text', 'boolean' ],
	[ '+', 'timestamptz', 'interval', 'timestamptz' ],
	[ '+', 'integer', 'integer', 'integer' ],
	[ '-', 'integer', 'integer', 'integer' ],
	[ '+', 'bigint', 'bigint', 'bigint' ],
	[ '+', 'integer', 'bigint', 'bigint' ],
	[ '=', 'integer', 'integer', 'boolean' ],
	[ '>', 'integer', 'integer', 'boolean' ],
	[ '>=', 'integer', 'integer', 'boolean' ],
	[ '<=', 'integer', 'integer', 'boolean' ],
	[ '>', 'bigint', 'integer', 'boolean' ],
	[ '>=', 'bigint', 'integer', 'boolean' ],
	[ '>=', 'interval', 'interval', 'boolean' ],
	[ '<=', 'interval', 'interval', 'boolean' ],);

# relations the owner-rights code reads and writes, shadowed by views
my @relations =
  qw(buses rules targets events deliveries dead_letters event_envelopes);

# SQL creating every shadow in $schema
sub shadows_sql
{
	my ($schema) = @_;
	my $sql = '';
	my $n = 0;
	for my $f (@functions)
	{
		my ($name, $args, $ret) = @$f;
		my @types = split /\s*,\s*/, $args;
		my $params = join(', ', map { "a$_ $types[$_ - 1]" } 1 .. @types);
		my $call = join(', ', map { "a$_" } 1 .. @types);
		my $what = "$schema.$name($args)";
		my $body;
		if ($ret =~ /^(SETOF|TABLE)/)
		{
			$body = "RETURN QUERY SELECT * FROM pg_catalog.$name($call);";
		}
		elsif ($name eq 'to_jsonb' && $args eq 'record')
		{
			$body = "RETURN pg_catalog.to_jsonb(a1);";
		}
		elsif ($name eq 'extract')
		{
			$body = "RETURN pg_catalog.extract(a1, a2);";
		}
		else
		{
			$body = "RETURN pg_catalog.$name($call);";
		}
		$sql .= qq{
CREATE FUNCTION $schema.$name($params) RETURNS $ret LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM mallory.tripwire('$what');
	$body
END
\$f\$;};
	}
	for my $a (@aggregates)
	{
		my ($name, $args, $stype) = @$a;
		my @types = $args eq '*' ? () : split /\s*,\s*/, $args;
		my $fn = "mallory_agg_" . $n++;
		my $params = join('', map { ", a$_ $types[$_ - 1]" } 1 .. @types);
		$sql .= qq{
CREATE FUNCTION $schema.$fn(s $stype$params) RETURNS $stype LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM mallory.tripwire('$schema.$name($args)');
	RETURN s;
END
\$f\$;
CREATE AGGREGATE $schema.$name($args) (SFUNC = $schema.$fn, STYPE = $stype);};
	}
	for my $o (@operators)
	{
		my ($op, $l, $r, $ret) = @$o;
		my $fn = "mallory_op_" . $n++;
		$sql .= qq{
CREATE FUNCTION $schema.$fn(a $l, b $r) RETURNS $ret LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM mallory.tripwire('$schema.$op($l, $r)');
	RETURN a OPERATOR(pg_catalog.$op) b;
END
\$f\$;
CREATE OPERATOR $schema.$op (LEFTARG = $l, RIGHTARG = $r, FUNCTION = $schema.$fn);};
	}
	for my $rel (@relations)
	{
		$sql .= qq{
CREATE VIEW $schema.$rel AS SELECT mallory.tripwire_relation('$schema.$rel') AS x;};
	}
	return $sql;
}

# the attacker: the README's publisher grants, CREATE on public and a schema
sq(q{
CREATE ROLE mallory LOGIN;
GRANT USAGE ON SCHEMA eventbus TO mallory;
GRANT EXECUTE ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz),
	eventbus.put_events(jsonb), eventbus.capture() TO mallory;
GRANT CREATE ON SCHEMA public TO mallory;
CREATE SCHEMA mallory AUTHORIZATION mallory;
});

# the kind of backend a tripwire runs in, for any role: pg_stat_activity
# shows it only to roles with the rights to see the session
$node->safe_psql(
	'postgres', q{
CREATE SCHEMA witness;
CREATE FUNCTION witness.backend_type() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
	SELECT a.backend_type FROM pg_catalog.pg_stat_activity a
	WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
$f$;
GRANT USAGE ON SCHEMA witness TO PUBLIC;
});

# the tripwire: records where it ran, says so in the log, tries to make
# mallory superuser (which works only where it runs as a superuser)
$node->safe_psql(
	'postgres', q{
SET ROLE mallory;
SET search_path = pg_catalog, pg_temp;
CREATE TABLE mallory.ran (what text, who text, backend text, superuser_then boolean);
GRANT USAGE ON SCHEMA mallory TO PUBLIC;
GRANT INSERT ON mallory.ran TO PUBLIC;
CREATE FUNCTION mallory.tripwire(what text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
	v_backend text;
	v_super boolean;
BEGIN
	v_backend := witness.backend_type();
	SELECT r.rolsuper INTO v_super FROM pg_catalog.pg_roles r
	WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER;
	RAISE WARNING 'eventbus shadow % ran as % in %', what, CURRENT_USER, v_backend;
	BEGIN
		INSERT INTO mallory.ran VALUES (what, CURRENT_USER, v_backend, v_super);
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	BEGIN
		ALTER ROLE mallory SUPERUSER;
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
END
$f$;
CREATE FUNCTION mallory.tripwire_relation(what text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
	PERFORM mallory.tripwire(what);
	RETURN true;
END
$f$;
} . shadows_sql('public') . shadows_sql('mallory'));

is(sq("SELECT count(*) > 70 FROM pg_proc WHERE pronamespace = 'mallory'::regnamespace"),
	't', 'the shadows exist');

# the worker and every backend start after the shadows exist: statements
# prepared from now on could bind to them
$node->restart;

# rules and targets, by an operator with an ordinary search_path (public
# first after pg_catalog, as by default)
my $ok = $sink->url('/ok');
my $flaky = $sink->url('/status/500-then-200');
my $bad = $sink->url('/status/400');
my $slow = $sink->url('/status/503');
$node->safe_psql(
	'postgres', qq{
SELECT eventbus.create_event_bus('shadow-bus');
SELECT eventbus.put_rule('all', '{"source": [{"prefix": "shadow."}]}');
SELECT eventbus.put_target('all', 'ok', '$ok', headers => '{"X-Test": "1"}');
SELECT eventbus.put_rule('flaky', '{"source": ["shadow.flaky"]}');
SELECT eventbus.put_target('flaky', 'flaky', '$flaky');
SELECT eventbus.put_rule('bad', '{"source": ["shadow.bad"]}');
SELECT eventbus.put_target('bad', 'bad', '$bad', max_retry_attempts => 0);
SELECT eventbus.put_rule('slow', '{"source": ["shadow.slow"]}');
SELECT eventbus.put_target('slow', 'slow', '$slow');
SELECT eventbus.put_rule('on-bus', '{"source": [{"prefix": "shadow."}]}', bus => 'shadow-bus');
SELECT eventbus.put_target('on-bus', 'bus-ok', '$ok', bus => 'shadow-bus');
SELECT eventbus.disable_rule('on-bus', 'shadow-bus');
SELECT eventbus.enable_rule('on-bus', 'shadow-bus');
SELECT eventbus.put_rule('tick', schedule => 'cron(0/5 * * * ? *)', schedule_timezone => 'Europe/Berlin');
SELECT eventbus.put_target('tick', 'tick', '$ok');
UPDATE eventbus.schedules SET next_run_at = now() - interval '1 hour' WHERE rule = 'tick';
});

# the attacker publishes: its schemas first in its search_path, its pg_temp
# full of shadows too, a table whose enum column has a cast to json of its own
my $tmp_shadows = shadows_sql('pg_temp');
my $big = 'y' x 300000;
$node->safe_psql(
	'postgres', qq{
SET ROLE mallory;
SET search_path = pg_catalog, pg_temp;
$tmp_shadows
CREATE TYPE mallory.mood AS ENUM ('calm', 'angry');
CREATE FUNCTION mallory.mood_to_json(m mallory.mood) RETURNS json LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM mallory.tripwire('mallory.mood_to_json');
	RETURN pg_catalog.to_json(m::text);
END
\$f\$;
CREATE CAST (mallory.mood AS json) WITH FUNCTION mallory.mood_to_json(mallory.mood);
CREATE TYPE pg_temp.temper AS ENUM ('cool', 'hot');
CREATE FUNCTION pg_temp.temper_to_json(t pg_temp.temper) RETURNS json LANGUAGE plpgsql AS \$f\$
BEGIN
	PERFORM mallory.tripwire('pg_temp.temper_to_json');
	RETURN pg_catalog.to_json(t::text);
END
\$f\$;
CREATE CAST (pg_temp.temper AS json) WITH FUNCTION pg_temp.temper_to_json(pg_temp.temper);
CREATE TABLE mallory.moods (id int PRIMARY KEY, m mallory.mood, t text);
CREATE TRIGGER moods_events AFTER INSERT OR UPDATE OR DELETE ON mallory.moods
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('shadow.capture');
CREATE TRIGGER moods_keys AFTER UPDATE ON mallory.moods
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('shadow.capture', 'shadow-bus', 'rows=keys');
CREATE TEMP TABLE tempers (id int PRIMARY KEY, t pg_temp.temper);
CREATE TRIGGER tempers_events AFTER INSERT ON pg_temp.tempers
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('shadow.capture', 'rows=new');

SET search_path = pg_temp, mallory, public, pg_catalog;
SELECT eventbus.put_event('shadow.put', 'One', '{"n": 1}');
SELECT eventbus.put_event('shadow.put', 'Two', '{"n": 2}', ARRAY['arn:x'], 'shadow-bus', '2026-01-01 00:00:00+00');
SELECT eventbus.put_event('shadow.flaky', 'Flaky', '{}');
SELECT eventbus.put_event('shadow.bad', 'Bad', '{}');
SELECT eventbus.put_event('shadow.slow', 'Slow', '{}');
SELECT eventbus.put_events('[
	{"Source": "shadow.events", "DetailType": "A", "Detail": "{\\"a\\": 1}"},
	{"Source": "shadow.events", "DetailType": "B", "Detail": {"b": 2}, "Resources": ["r1"],
	 "EventBusName": "arn:aws:events:eu-west-1:000000000000:event-bus/shadow-bus", "Time": 1700000000},
	{"Source": "shadow.events", "DetailType": "C", "Detail": "{}", "Time": "2026-02-03T04:05:06Z"},
	{"Source": "shadow.events", "DetailType": "Bad", "Detail": "[1]"},
	{"Source": "shadow.events", "DetailType": "Nobus", "Detail": "{}", "EventBusName": "nope"},
	{"Source": 7, "DetailType": "x", "Detail": "{}"},
	{"Source": "shadow.events", "DetailType": "Big", "Detail": {"x": "$big"}}]'::jsonb);
INSERT INTO mallory.moods VALUES (1, 'calm', 'a'), (2, 'angry', 'b');
UPDATE mallory.moods SET m = 'angry' WHERE id OPERATOR(pg_catalog.=) 1;
DELETE FROM mallory.moods WHERE id OPERATOR(pg_catalog.=) 2;
INSERT INTO tempers VALUES (1, 'hot');
});

# what the worker does with it: deliveries, a retry, a dead letter
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.events WHERE source = 'aws.events'", '1'),
	'the maintenance process fired the scheduled rule');
ok(wait_for_value($node,
		"SELECT count(*) FROM eventbus.deliveries WHERE target_id <> 'slow'", '0'),
	'deliveries settled');
is(sq("SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'bad'"), '1',
	'the 400 is dead-lettered');
# 5 put_event, 3 valid put_events entries, 4 changes of moods (and 1 more
# on shadow-bus for the UPDATE, rows=keys), 1 of tempers
is(sq("SELECT count(*) FROM eventbus.events WHERE source LIKE 'shadow.%'"), '14',
	'every valid event was published');
is(sq("SELECT string_agg(detail_type, ',' ORDER BY detail_type) FROM eventbus.events WHERE source = 'shadow.events'"),
	'A,B,C', 'put_events published its valid entries');
is($sink->count('/status/500-then-200'), 2, 'the flaky target got its retry');
ok($sink->wait_count('/status/503', 2) >= 2, 'the slow target is being retried');

# redrive, and a target deleted with a delivery pending
$node->safe_psql(
	'postgres', qq{
SELECT eventbus.put_target('bad', 'bad', '$ok');
SELECT eventbus.redrive_dead_letters(target_id => 'bad');
SELECT eventbus.remove_target('slow', 'slow');
SELECT eventbus.delete_rule('slow');
});
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries", '0'),
	'the redriven delivery settled');
is(sq("SELECT error_code FROM eventbus.dead_letters WHERE target_id = 'slow'"),
	'TARGET_DELETED', 'the deleted target\'s delivery is dead-lettered');
is(sq("SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'bad'"), '0',
	'the dead letter was redriven');

# the capture events carry the attacker's cast's output
is(sq(
		"SELECT string_agg(detail ->> 'operation' || ':' || coalesce(detail -> 'new' ->> 'm', '-'), ',' ORDER BY published_at)"
		  . " FROM eventbus.events WHERE source = 'shadow.capture' AND bus = 'default' AND detail ->> 'table' = 'moods'"),
	'INSERT:calm,INSERT:angry,UPDATE:angry,DELETE:-',
	'capture published every change of the attacker\'s table');

# the verdict: which shadows ran, as whom, where
my $ran = sq(
	"SELECT coalesce(string_agg(DISTINCT what || ' as ' || who || ' in ' || coalesce(backend, '?'), '; '), '')"
	  . " FROM mallory.ran");
note("shadows and casts that ran: $ran");
is( sq(
		"SELECT coalesce(string_agg(DISTINCT what || ' as ' || who, '; '), '') FROM mallory.ran"
		  . " WHERE backend = 'client backend' AND what NOT IN ('mallory.mood_to_json', 'pg_temp.temper_to_json')"
	),
	'',
	'no shadow ran in a client backend (put_event, put_events, capture, the SQL API)');
is( sq(
		"SELECT coalesce(string_agg(DISTINCT what || ' as ' || who, '; '), '') FROM mallory.ran"
		  . " WHERE what IN ('mallory.mood_to_json', 'pg_temp.temper_to_json') AND who <> 'mallory'"),
	'',
	'the attacker\'s casts ran only with the attacker\'s rights');
is(sq("SELECT count(*) > 0 FROM mallory.ran WHERE what = 'mallory.mood_to_json' AND who = 'mallory'"),
	't', 'the attacker\'s cast did run, as the attacker (the writer)');
is( sq(
		"SELECT coalesce(string_agg(DISTINCT what || ' as ' || who, '; '), '') FROM mallory.ran"
		  . " WHERE backend = 'pg_eventbus delivery worker'"),
	'',
	'no shadow ran in the delivery worker');
is( sq(
		"SELECT coalesce(string_agg(DISTINCT what || ' as ' || who || ' in ' || coalesce(backend, '?'), '; '), '')"
		  . " FROM mallory.ran WHERE what NOT IN ('mallory.mood_to_json', 'pg_temp.temper_to_json')"),
	'',
	'no shadow ran anywhere');
my $log = slurp_file($node->logfile);
my @foreign = grep { !/ran as mallory in client backend/ }
  ($log =~ /WARNING:  (eventbus shadow .* ran as .*)/g);
is(join("\n", @foreign), '', 'the server log shows no shadow run by another role');
is(sq("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'"), 'f',
	'the attacker is not superuser');

$node->stop;
done_testing();
