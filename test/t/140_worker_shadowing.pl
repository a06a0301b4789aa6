# The worker's statements resolve only to pg_catalog and eventbus, whatever
# a user created elsewhere.  The database's search_path puts public before
# pg_catalog, and public holds look-alikes of the functions and operators
# the worker and the dead-letter trigger use, each recording the backend
# that called it.  Deliveries, retries, dead letters and a deleted target
# then run, and no look-alike may have been called by the worker or from
# inside the trigger.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('shadowing');

$node->safe_psql('postgres', q{
CREATE TABLE public.shadow_calls (pid int, app text, fn text);
GRANT INSERT ON public.shadow_calls TO PUBLIC;
CREATE FUNCTION public.shadow_note(fn text) RETURNS void LANGUAGE sql AS
  $$ INSERT INTO public.shadow_calls
     VALUES (pg_catalog.pg_backend_pid(), pg_catalog.current_setting('application_name'), fn) $$;

CREATE FUNCTION public.cardinality(anyarray) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('cardinality'); RETURN pg_catalog.cardinality($1); END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.jsonb_build_object(text, uuid) RETURNS jsonb LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('jsonb_build_object');
     RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION public.format(text, text, text, text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('format'); RETURN pg_catalog.format($1, $2, $3, $4); END $$;
CREATE FUNCTION public.format(text, text, text, text, text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('format'); RETURN pg_catalog.format($1, $2, $3, $4, $5); END $$;
CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION public.shadow_sa(text, text, text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('string_agg');
     RETURN CASE WHEN $1 IS NULL THEN $2 ELSE pg_catalog.concat($1, $3, $2) END; END $$;
CREATE AGGREGATE public.string_agg(text, text) (sfunc = public.shadow_sa, stype = text);

CREATE FUNCTION public.shadow_int8eq(int8, int8) RETURNS bool LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('int8 ='); RETURN pg_catalog.int8eq($1, $2); END $$;
CREATE OPERATOR public.= (leftarg = int8, rightarg = int8, function = public.shadow_int8eq);
CREATE FUNCTION public.shadow_textcat(text, text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('text ||'); RETURN pg_catalog.textcat($1, $2); END $$;
CREATE OPERATOR public.|| (leftarg = text, rightarg = text, function = public.shadow_textcat);
CREATE FUNCTION public.shadow_tsle(timestamptz, timestamptz) RETURNS bool LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('timestamptz <='); RETURN pg_catalog.timestamptz_le($1, $2); END $$;
CREATE OPERATOR public.<= (leftarg = timestamptz, rightarg = timestamptz, function = public.shadow_tsle);
CREATE FUNCTION public.shadow_textne(text, text) RETURNS bool LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('text <>'); RETURN pg_catalog.textne($1, $2); END $$;
CREATE OPERATOR public.<> (leftarg = text, rightarg = text, function = public.shadow_textne);
CREATE FUNCTION public.shadow_nummul(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.shadow_note('numeric *'); RETURN pg_catalog.numeric_mul($1, $2::numeric); END $$;
CREATE OPERATOR public.* (leftarg = numeric, rightarg = integer, function = public.shadow_nummul);

ALTER DATABASE postgres SET search_path = public, pg_catalog;
});
# the look-alikes are live for a session on the default search path
is($node->safe_psql('postgres', q{
SELECT public.cardinality(ARRAY['a']) = 1;
SELECT count(*) > 0 FROM public.shadow_calls;
TRUNCATE public.shadow_calls;
}), "t\nt", 'the look-alikes are called on a search path that puts public first');

# the worker connects again, under the database's search_path
$node->restart;
my $log_offset = -s $node->logfile;

add_target($node, 'ok', 'test.ok', 'ok', $sink->url('/ok'), headers => '{"X-Test": "1"}');
add_target($node, 'flaky', 'test.flaky', 'flaky', $sink->url('/status/500-then-200'));
add_target($node, 'down', 'test.down', 'down', $sink->url('/status/500'),
	max_retry_attempts => 1);
publish($node, 'test.ok', 5);
publish($node, 'test.flaky', 1);
publish($node, 'test.down', 1);
# a delivery whose target is gone when claimed: as a publisher that matched
# the target before it was deleted leaves it (the deletion's trigger
# remembers the target; 020_retries.pl runs the race itself)
$node->safe_psql('postgres', q{
BEGIN;
SELECT eventbus.put_event('test.ghost', 'Ghost', '{}');
INSERT INTO eventbus.deliveries (event_id, event_published_at, bus, rule, target_id)
	SELECT id, published_at, 'default', 'ghost-rule', 'ghost' FROM eventbus.events WHERE source = 'test.ghost';
INSERT INTO eventbus.deleted_targets (bus, rule, target_id) VALUES ('default', 'ghost-rule', 'ghost');
COMMIT;
});
is($sink->wait_count('/ok', 5), 5, 'deliveries sent');
is($sink->wait_count('/status/500-then-200', 2), 2, 'a retry sent');
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.dead_letters WHERE target_id IN ('down', 'ghost')", '2'),
	'a failure and a missing target dead-lettered');

# a target deleted with a queued delivery: the trigger dead-letters it
$node->safe_psql('postgres', q{
SELECT eventbus.put_rule('parked', '{"source": ["test.parked"]}');
SELECT eventbus.put_target('parked', 'parked', 'http://127.0.0.1:9/never');
BEGIN;
SELECT eventbus.put_event('test.parked', 'Parked', '{}');
UPDATE eventbus.deliveries SET next_attempt_at = now() + interval '1 hour'
	WHERE target_id = 'parked';
COMMIT;
SET application_name = 'remove_target';
SELECT eventbus.remove_target('parked', 'parked');
});
is($node->safe_psql('postgres',
		"SELECT error_code FROM eventbus.dead_letters WHERE target_id = 'parked'"),
	'TARGET_DELETED', 'the deleted target\'s delivery dead-lettered by the trigger');
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries", '0'),
	'the queue is settled');

my $workers = $node->safe_psql('postgres',
	"SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type LIKE '%eventbus%'");
ok($workers ne '', 'the worker runs');
my $calls = $node->safe_psql('postgres', qq{
SELECT coalesce(string_agg(DISTINCT fn, ', ' ORDER BY fn), '')
FROM public.shadow_calls
WHERE pid IN ($workers) OR app IN ('remove_target')});
is($calls, '', 'no look-alike was called by the worker or the dead-letter trigger');
ok(!$node->log_contains('delivery worker" \\(PID \\d+\\) exited', $log_offset), 'the worker never failed');

$sink->stop;
$node->stop;
done_testing();
