# The counters: after a known load every counter equals what the sink saw
# and what dead_letters holds; rolled-back publishes count nothing;
# stats_reset() zeroes them; a clean restart keeps them; two workers and
# several publishing sessions lose no update.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
# breakers off: the target "down" answers 500 to every request, and the
# counts below expect each of its deliveries retried at once, not held by
# its circuit breaker (163_breaker.pl tests that)
my $node = new_node('stats',
	conf => "eventbus.workers = 2\nrestart_after_crash = on\neventbus.breaker_failures = 0\n");

# the counters of target $t as "invocations|attempts|successful|retries|throttled|timed_out|failed|dead"
sub target_counters
{
	my ($t) = @_;
	return $node->safe_psql('postgres',
		"SELECT concat_ws('|', invocations, invocation_attempts, successful_invocation_attempts,"
		  . " retry_invocation_attempts, throttled_invocation_attempts, timed_out_invocation_attempts,"
		  . " failed_invocations, dead_letter_invocations)"
		  . " FROM eventbus.target_stats WHERE target_id = '$t'");
}

sub settled
{
	return wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0');
}

$node->safe_psql(
	'postgres', qq{
SELECT eventbus.put_rule('load', '{"source": ["test.load"]}');
SELECT eventbus.put_target('load', 'ok', '@{[ $sink->url('/ok') ]}');
SELECT eventbus.put_target('load', 'down', '@{[ $sink->url('/status/500') ]}', max_retry_attempts => 2);
SELECT eventbus.put_target('load', 'bad', '@{[ $sink->url('/status/400') ]}');
SELECT eventbus.put_target('load', 'busy', '@{[ $sink->url('/status/429-then-200') ]}');
SELECT eventbus.put_rule('unmatched', '{"source": ["test.nothing"]}');
SELECT eventbus.put_target('unmatched', 'never', '@{[ $sink->url('/never') ]}');
});

# 5 events committed (3 + 2 around a rolled-back savepoint), 2 rolled back
my $n = 5;
publish($node, 'test.load', 3);
$node->safe_psql(
	'postgres', q{
BEGIN;
SELECT eventbus.put_event('test.load', 'Test Event', '{"i": 100}');
ROLLBACK;
BEGIN;
SELECT eventbus.put_event('test.load', 'Test Event', '{"i": 4}');
SAVEPOINT s1;
SELECT eventbus.put_event('test.load', 'Test Event', '{"i": 101}');
ROLLBACK TO s1;
SAVEPOINT s2;
SELECT eventbus.put_event('test.load', 'Test Event', '{"i": 5}');
RELEASE s2;
COMMIT;
});
ok(settled(), 'the load settled');

# what the sink saw
is($sink->count('/ok'), $n, 'sink: one request per event to ok');
is($sink->count('/status/500'), 3 * $n, 'sink: three requests per event to down');
is($sink->count('/status/400'), $n, 'sink: one request per event to bad');
is($sink->count('/status/429-then-200'), 2 * $n, 'sink: two requests per event to busy');

is( $node->safe_psql('postgres',
		"SELECT concat_ws('|', put_events, put_event_bytes, matched_events) FROM eventbus.bus_stats WHERE bus = 'default'"),
	"$n|" . $node->safe_psql('postgres',
		"SELECT sum(octet_length(eventbus.envelope(e)::text)) FROM eventbus.events e")
	  . "|$n",
	'bus_stats: events put, their bytes, matched events (rolled-back ones not counted)');
is( $node->safe_psql('postgres',
		"SELECT string_agg(rule || '=' || matched_events, ',' ORDER BY rule) FROM eventbus.rule_stats"),
	"load=$n,unmatched=0", 'rule_stats: matched events per rule');

my $dl = $node->safe_psql('postgres',
	"SELECT string_agg(target_id || '=' || count, ',' ORDER BY target_id) FROM"
	  . " (SELECT target_id, count(*) FROM eventbus.dead_letters GROUP BY 1) d");
is($dl, "bad=$n,down=$n", 'dead_letters holds the failed deliveries');

# invocations|attempts|successful|retries|throttled|timed_out|failed|dead
is(target_counters('ok'), "$n|$n|$n|0|0|0|0|0", 'ok: every attempt succeeded');
is(target_counters('down'), join('|', $n, 3 * $n, 0, 2 * $n, 0, 0, $n, $n),
	'down: three attempts, two retries, failed and dead-lettered');
is(target_counters('bad'), "$n|$n|0|0|0|0|$n|$n", 'bad: one attempt, dead-lettered at once');
is(target_counters('busy'), join('|', $n, 2 * $n, $n, $n, $n, 0, 0, 0),
	'busy: throttled once, then delivered on the retry');
is(target_counters('never'), '0|0|0|0|0|0|0|0', 'never: nothing');

is( $node->safe_psql('postgres',
		"SELECT ingestion_to_invocation_start_latency_count || '|' || ingestion_to_invocation_success_latency_count"
		  . " || '|' || ingestion_to_invocation_start_latency_buckets[16]"
		  . " FROM eventbus.target_stats WHERE target_id = 'busy'"),
	"$n|$n|$n", 'busy: one start latency and one success latency per event');
is( $node->safe_psql('postgres',
		"SELECT ingestion_to_invocation_start_latency_count || '|' || ingestion_to_invocation_success_latency_count"
		  . " FROM eventbus.target_stats WHERE target_id = 'down'"),
	"$n|0", 'down: start latencies, no success latency');

# the queue at a glance
my $status = $node->safe_psql('postgres',
	"SELECT concat_ws('|', workers_running, backlog, due, leases_held, dead_letters_last_hour, dead_letters) FROM eventbus.status");
is($status, join('|', 2, 0, 0, 0, 2 * $n, 2 * $n), 'status: two workers, empty queue, the dead letters');
like($node->safe_psql('postgres', 'SELECT workers FROM eventbus.status'),
	qr/^#1 pid \d+ (idle|sending|settling|claiming), \d+ in flight, last claim \d{4}-.*; #2 pid \d+ /,
	'status: each worker with its state and last claim');

# the backlog and the oldest due delivery, without a worker to take them
$node->safe_psql(
	'postgres', q{
INSERT INTO eventbus.deliveries (event_id, event_published_at, bus, rule, target_id, next_attempt_at, leased_until, created_at)
SELECT gen_random_uuid(), now(), 'default', 'gone', 'parked', v.next, v.lease, now() - interval '10 minutes'
FROM (VALUES (now() + interval '1 hour', NULL::timestamptz),
			 (now() + interval '2 hours', now() + interval '2 hours')) AS v(next, lease);
});
is( $node->safe_psql('postgres',
		"SELECT concat_ws('|', backlog, due, waiting_on_backoff, in_flight, oldest_due_age IS NULL,"
		  . " oldest_backoff_age >= interval '10 minutes') FROM eventbus.target_stats WHERE target_id = 'parked'"),
	'2|0|1|1|t|t',
	'target_stats: a delivery waiting on backoff is not due; its age counts from publication');
$node->safe_psql('postgres', "DELETE FROM eventbus.deliveries WHERE target_id = 'parked'");

# stats_reset of one target, then of everything
my $reset = $node->safe_psql('postgres',
	"SELECT eventbus.stats_reset(target_id => 'down') = (SELECT stats_reset FROM eventbus.target_stats WHERE target_id = 'down')");
is($reset, 't', 'stats_reset(target_id): returns the reset time the view shows');
is(target_counters('down'), '0|0|0|0|0|0|0|0', 'stats_reset(target_id): that target is zero');
is(target_counters('ok'), "$n|$n|$n|0|0|0|0|0", 'stats_reset(target_id): the others are kept');
$node->safe_psql('postgres', 'SELECT eventbus.stats_reset()');
is( $node->safe_psql('postgres',
		"SELECT sum(invocation_attempts + invocations + failed_invocations + dead_letter_invocations"
		  . " + ingestion_to_invocation_start_latency_count) FROM eventbus.target_stats"),
	'0', 'stats_reset(): every target is zero');
is( $node->safe_psql('postgres',
		"SELECT (SELECT sum(put_events + matched_events) FROM eventbus.bus_stats)"
		  . " + (SELECT sum(matched_events) FROM eventbus.rule_stats)"),
	'0', 'stats_reset(): buses and rules are zero');

# a clean restart keeps them
publish($node, 'test.load', 2);
ok(settled(), 'two more events settled');
my $before = target_counters('down') . ' ' . target_counters('busy');
is($before, "2|6|0|4|0|0|2|2 2|4|2|2|2|0|0|0", 'counters after two more events');
$node->restart;
is(target_counters('down') . ' ' . target_counters('busy'), $before,
	'a clean restart keeps the counters');
is($node->safe_psql('postgres', "SELECT put_events FROM eventbus.bus_stats WHERE bus = 'default'"),
	'2', 'a clean restart keeps the bus counters');

# a crash loses at most the counts since the first worker's last save
# (every 10 s): after a save, kill -9 a worker, and the server restarts
# with the saved counters
publish($node, 'test.load', 1);
ok(settled(), 'one more event settled');
my $saved = target_counters('busy');
is($saved, "3|6|3|3|3|0|0|0", 'counters before the crash');
sleep(11);
my $pid = worker_pid($node);
kill 'KILL', $pid;
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM eventbus.worker_status() WHERE pid <> $pid"),
	'the server restarted after the crash');
is(target_counters('busy'), $saved, 'the counters saved before the crash are back');
like(slurp_file($node->logfile), qr/terminated by signal 9/, 'it was a crash');

# several publishing sessions and two workers: no lost update
$node->safe_psql('postgres', 'SELECT eventbus.stats_reset()');
$node->safe_psql(
	'postgres', qq{
SELECT eventbus.put_rule('fast', '{"source": ["test.fast"]}');
SELECT eventbus.put_target('fast', 'fast1', '@{[ $sink->url('/fast1') ]}');
SELECT eventbus.put_target('fast', 'fast2', '@{[ $sink->url('/fast2') ]}');
});
my $script = PostgreSQL::Test::Utils::tempdir() . '/publish.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"SELECT eventbus.put_event('test.fast', 'Test Event', '{\"k\": 1}');\n");
my ($clients, $per_client) = (6, 100);
$node->command_ok(
	[ 'pgbench', '-n', '-c', $clients, '-j', 3, '-t', $per_client, '-f', $script,
		'-h', $node->host, '-p', $node->port, 'postgres' ],
	'six sessions publish at once');
my $total = $clients * $per_client;
ok(settled(), 'the concurrent load settled');
is($sink->count('/fast1'), $total, 'sink: every event reached fast1');
is( $node->safe_psql('postgres',
		"SELECT put_events || '|' || matched_events FROM eventbus.bus_stats WHERE bus = 'default'"),
	"$total|$total", 'bus_stats: exact under concurrent publishing');
is($node->safe_psql('postgres', "SELECT matched_events FROM eventbus.rule_stats WHERE rule = 'fast'"),
	$total, 'rule_stats: exact under concurrent publishing');
is( $node->safe_psql('postgres',
		"SELECT string_agg(concat_ws('|', target_id, invocations, invocation_attempts, successful_invocation_attempts,"
		  . " ingestion_to_invocation_success_latency_count), ' ' ORDER BY target_id)"
		  . " FROM eventbus.target_stats WHERE rule = 'fast'"),
	"fast1|$total|$total|$total|$total fast2|$total|$total|$total|$total",
	'target_stats: exact with two workers');
is( $node->safe_psql('postgres',
		"SELECT count(*) || '|' || sum(claimed) FILTER (WHERE claimed > 0) FROM eventbus.worker_status()"),
	'2|' . $node->safe_psql('postgres', "SELECT sum(claimed) FROM eventbus.worker_status()"),
	'worker_status: both workers registered');

# eventbus.track_stats = off stops the counting of the session that sets
# it (a superuser's setting); what was counted stays
my $counts = "SELECT put_events || '|' || matched_events FROM eventbus.bus_stats WHERE bus = 'default'";
my $was = $node->safe_psql('postgres', $counts);
$node->safe_psql('postgres', q{
SET eventbus.track_stats = off;
SELECT eventbus.put_event('test.fast', 'Fast', '{}');
});
is($node->safe_psql('postgres', $counts), $was, 'track_stats = off: the publish is not counted');
$node->safe_psql('postgres', "SELECT eventbus.put_event('test.fast', 'Fast', '{}')");
my ($p, $m) = split /\|/, $was;
is($node->safe_psql('postgres', $counts), ($p + 1) . '|' . ($m + 1),
	'track_stats on (the default): the next publish is counted');
$node->safe_psql('postgres', 'CREATE ROLE plain_user LOGIN');
my ($rc, $out, $err) = $node->psql('postgres', 'SET eventbus.track_stats = off',
	extra_params => [ '-U', 'plain_user' ]);
like($err, qr/permission denied to set parameter "eventbus.track_stats"/,
	'track_stats: only a superuser sets it');

$node->stop;
$sink->stop;
done_testing();
