# The worker's statements keep the plans they were written for.  Their
# plans are made once, here while autovacuum has just seen the queue empty
# (the state a busy queue is in most of the time): the statements that
# follow a claim must still reach their rows by id probes or by ctid, never
# by a scan of the whole queue, and none may be JIT-compiled, even with
# every cost above the JIT thresholds.  auto_explain logs every plan run.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('plans', no_extension => 1, conf => q{
shared_preload_libraries = 'pg_eventbus,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
jit = on
jit_above_cost = 0
jit_optimize_above_cost = 0
jit_inline_above_cost = 0
eventbus.max_concurrent_per_target = 4
});
$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventbus');
$node->safe_psql('postgres', 'VACUUM eventbus.deliveries');
is($node->safe_psql('postgres',
	"SELECT relpages, reltuples FROM pg_class WHERE oid = 'eventbus.deliveries'::regclass"),
	'0|0', 'the queue looks vacuumed and empty to the planner');

add_target($node, 'ok', 'test.ok', 'ok', $sink->url('/ok'));
add_target($node, 'failing', 'test.failing', 'failing', $sink->url('/status/500'),
	max_retry_attempts => 1);
# the first settle, which makes the plans, sees a queue of one row
publish($node, 'test.ok', 1);
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'),
	'first delivery settled');
publish($node, 'test.ok', 50);
publish($node, 'test.failing', 1);
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'),
	'first failure settled');
publish($node, 'test.failing', 1);
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'),
	'every delivery settled');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'),
	'2', 'the failing target retried, then dead-lettered');

# a query of ours, to know whether this server can JIT at all
$node->safe_psql('postgres', 'SELECT sum(g) FROM generate_series(1, 1000) AS g');

# every plan auto_explain logged in $text: [query text, plan]
sub plans_in
{
	my ($text) = @_;
	my @plans;
	my $current;
	for my $line (split /\n/, $text)
	{
		if ($line =~ /LOG:\s+duration: [\d.]+ ms\s+plan:$/)
		{
			$current = [ '', '' ];
			push @plans, $current;
		}
		elsif ($current && $line =~ /^\t(.*)$/)
		{
			my $text = $1;
			if ($text =~ /^Query Text: (.*)$/) { $current->[0] = $1 }
			else { $current->[1] .= "$text\n" }
		}
		else
		{
			undef $current;
		}
	}
	return @plans;
}
my @plans = plans_in(slurp_file($node->logfile));
my %plans_of = (
	claim => [ grep { $_->[0] =~ /^WITH due AS/ } @plans ],
	done => [ grep { $_->[0] =~ /^DELETE FROM eventbus\.deliveries/ } @plans ],
	retry => [ grep { $_->[0] =~ /^UPDATE eventbus\.deliveries d SET next_attempt_at = s\.next/ } @plans ],
	dead => [ grep { $_->[0] =~ /SELECT eventbus\.dead_letter\(.*FROM gone g/ } @plans ],
	# rows claimed beyond the target's limit of 4 requests, handed back
	release => [ grep { $_->[0] =~ /^UPDATE eventbus\.deliveries d SET attempts = d\.attempts OPERATOR\(pg_catalog\.-\) 1/ } @plans ],
);
for my $kind (sort keys %plans_of)
{
	ok(scalar @{ $plans_of{$kind} } > 0, "$kind statement ran and was logged");
	my @whole = grep { $_->[1] =~ /Seq Scan on deliveries|Hash Join|Merge Join/ } @{ $plans_of{$kind} };
	is(scalar @whole, 0, "$kind: no scan of the whole queue, no hash or merge join")
	  or diag($whole[0][1]);
}
ok(!grep({ $_->[1] !~ /Index Cond: \(id = s\.id\)/ || $_->[1] !~ /Tid Scan on deliveries/ }
		@{ $plans_of{done} }),
	'done: id probes, then one TID scan');
ok(!grep({ $_->[1] !~ /Tid Scan on deliveries/ } map { @{ $plans_of{$_} } } qw(retry dead release)),
	'retry, dead letters and release: rows reached by ctid');

SKIP:
{
	my ($ours) = grep { $_->[0] =~ /generate_series\(1, 1000\)/ } @plans;
	skip 'this server cannot JIT (llvmjit not installed)', 1
	  unless $ours && $ours->[1] =~ /^JIT:/m;
	my @jit = grep { $_->[1] =~ /^JIT:/m } map { @{ $plans_of{$_} } } keys %plans_of;
	is(scalar @jit, 0, 'no statement of the worker is JIT-compiled');
}

# Misleading statistics: the archive and the queue analyzed while tiny,
# then grown to hundreds of thousands of rows behind the planner's back.
# A worker started now plans against those statistics; every statement it
# runs, and the dead-letter trigger, must still reach events and
# deliveries rows by index probes or TIDs: no scan, no hash of either.
$node->safe_psql('postgres', q{
ALTER TABLE eventbus.events SET (autovacuum_enabled = off);
ALTER TABLE eventbus.deliveries SET (autovacuum_enabled = off);
ANALYZE eventbus.events;
ANALYZE eventbus.deliveries;
ALTER TABLE eventbus.events DISABLE TRIGGER events_match;
INSERT INTO eventbus.events (id, bus, source, detail_type, detail, "time", account, region)
	SELECT gen_random_uuid(), 'default', 'test.archive', 'Old', jsonb_build_object('i', g),
		   now(), '000000000000', 'local'
	FROM generate_series(1, 300000) g;
ALTER TABLE eventbus.events ENABLE TRIGGER events_match;
INSERT INTO eventbus.deliveries (event_id, bus, rule, target_id, next_attempt_at)
	SELECT id, 'default', 'archive', 'archive', now() + interval '1 day'
	FROM eventbus.events WHERE source = 'test.archive' LIMIT 200000;
});
$node->restart;
my $offset = -s $node->logfile;
publish($node, 'test.ok', 20);
publish($node, 'test.failing', 1);
$node->safe_psql('postgres', q{
BEGIN;
SELECT eventbus.put_event('test.ghost', 'Ghost', '{}');
INSERT INTO eventbus.deliveries (event_id, bus, rule, target_id)
	SELECT id, 'default', 'ghost-rule', 'ghost' FROM eventbus.events WHERE source = 'test.ghost';
COMMIT;
SELECT eventbus.put_rule('parked', '{"source": ["test.parked"]}');
SELECT eventbus.put_target('parked', 'parked', 'http://127.0.0.1:9/never');
BEGIN;
SELECT eventbus.put_event('test.parked', 'Parked', '{}');
UPDATE eventbus.deliveries SET next_attempt_at = now() + interval '1 hour' WHERE target_id = 'parked';
COMMIT;
SELECT eventbus.remove_target('parked', 'parked');
});
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE next_attempt_at < now() + interval '1 hour'", '0'),
	'grown tables: every delivery settled');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM eventbus.dead_letters WHERE target_id IN ('failing', 'ghost', 'parked')"),
	'5', 'grown tables: failures, a missing and a removed target dead-lettered');
# the worker's statements (the start-up reconciliation of leases, which
# looks at every leased row once per start, is left out), and the inner
# statement of eventbus.dead_letter(), whose text spans lines
my @grown = grep {
	$_->[0] =~ /^(WITH due AS|DELETE FROM eventbus\.deliveries WHERE ctid|UPDATE eventbus\.deliveries d SET (next_attempt_at = s\.next|attempts)|WITH s AS|SELECT pg_catalog\.min)/
	  || $_->[1] =~ /INSERT INTO eventbus\.dead_letters/
} plans_in(substr(slurp_file($node->logfile), $offset));
for my $kind (qw(claim done retry dead))
{
	my $re = {
		claim => qr/^WITH due AS/,
		done => qr/^DELETE FROM eventbus\.deliveries/,
		retry => qr/^UPDATE eventbus\.deliveries d SET next_attempt_at = s\.next/,
		dead => qr/^WITH s AS .*eventbus\.dead_letter\(/,
	}->{$kind};
	ok(scalar(grep { $_->[0] =~ $re } @grown) > 0, "grown tables: $kind statement ran and was logged");
}
my @bad = grep { $_->[1] =~ /Seq Scan on (events|deliveries)|Hash|Merge Join/ } @grown;
is(scalar @bad, 0, 'grown tables: no scan or hash of events or deliveries in any plan')
  or diag("$bad[0][0]\n$bad[0][1]");

$node->stop;
done_testing();
