# The worker's statements keep the plans they were written for, whatever
# the statistics said when they were planned.  A worker plans each
# statement once, at its first run, and keeps the plan for its life; here
# it does so while the statistics mislead: the queue vacuumed and empty,
# the tables analyzed empty or with ten rows, just truncated, or a queue
# far larger than the archive.  The tables then grow to hundreds of
# thousands of rows (autovacuum is off, so nothing re-plans), and every
# plan the worker runs (and the maintenance process's probe for due
# schedules) must still reach eventbus.events, eventbus.deliveries and
# eventbus.schedules by index probes with an index condition, or by TID:
# no Seq Scan, no Bitmap Heap Scan, no hash or merge join over them, no
# index scan without a condition.  The test sets no planner setting; the
# worker sets its own.  None may be JIT-compiled either, even with every
# cost above the JIT thresholds.  auto_explain logs every plan run.
#
# EB_PLANS_ROWS sets how far the tables grow (default 200000).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $rows = $ENV{EB_PLANS_ROWS} // 200000;

my $sink = start_sink();
my $node = new_node('plans', no_extension => 1, conf => q{
shared_preload_libraries = 'pg_eventbus,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
autovacuum = off
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
# a disabled target with rows: the sweep of held targets' expired rows
add_target($node, 'held', 'test.held', 'held', $sink->url('/held'));
$node->safe_psql('postgres', "SELECT eventbus.disable_target('held', 'held')");
publish($node, 'test.held', 3);

# Makes the worker run each of its statements: a delivery, a retry, a
# dead letter, and claims with nothing due.
my $dead_expected = 0;
sub work
{
	my ($n) = @_;
	publish($node, 'test.ok', $n);
	publish($node, 'test.failing', 1);
	$dead_expected++;
	ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries WHERE next_attempt_at < now() + interval \'1 hour\' AND target_id <> \'held\'', '0'),
		"$n deliveries and a failure settled");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'),
		$dead_expected, 'the failing target retried, then dead-lettered');
}

# Grows the archive and the queue without the match trigger: events that
# match no rule, and deliveries due tomorrow (so the worker leaves them
# alone but walks past them if its plan reads the queue); and as many
# schedules due tomorrow (replica mode skips their rules' foreign key).
sub grow
{
	my ($events, $deliveries) = @_;
	$node->safe_psql('postgres', qq{
SET session_replication_role = replica;
INSERT INTO eventbus.events (id, bus, source, detail_type, detail, "time", account, region,
                             published_at)
SELECT gen_random_uuid(), 'default', 'bulk', 'Bulk', jsonb_build_object('i', g), now(),
       '000000000000', 'local', now() - interval '1 hour'
FROM generate_series(1, $events) g;
INSERT INTO eventbus.deliveries (event_id, event_published_at, bus, rule, target_id, next_attempt_at)
SELECT gen_random_uuid(), now(), 'default', CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'failing' END,
       CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'failing' END, now() + interval '1 day'
FROM generate_series(1, $deliveries) g;
INSERT INTO eventbus.schedules (bus, rule, next_run_at)
SELECT 'default', 'bulk-' || gen_random_uuid(), now() + interval '1 day'
FROM generate_series(1, $events) g;
});
}

sub empty_tables
{
	$node->safe_psql('postgres', 'TRUNCATE eventbus.events, eventbus.deliveries, eventbus.schedules');
}

# every plan auto_explain logged from byte $offset on: [query text, plan]
sub plans_since
{
	my ($offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	my (@plans, $current, $in_text);
	for my $line (split /\n/, $log)
	{
		if ($line =~ /LOG:\s+duration: [\d.]+ ms\s+plan:$/)
		{
			$current = [ '', '' ];
			$in_text = 0;
			push @plans, $current;
		}
		elsif ($current && $line =~ /^\t(.*)$/)
		{
			my $text = $1;
			if ($text =~ /^Query Text: (.*)$/) { $current->[0] = $1; $in_text = 1 }
			elsif ($in_text && $text !~ /\(cost=/) { $current->[0] .= " $text" }
			else { $in_text = 0; $current->[1] .= "$text\n" }
		}
		else
		{
			undef $current;
		}
	}
	$_->[0] =~ s/^\s+// for @plans;
	return @plans;
}

# The worker's statements, by their text.
my %kinds = (
	claim => qr/^WITH (?:RECURSIVE )?queued/,
	# deleted targets no row of which can come any more
	forget => qr/^DELETE FROM eventbus\.deleted_targets g\s+WHERE g\.bus OPERATOR\(pg_catalog\.>=\)/,
	next_due => qr/^SELECT pg_catalog\.min\(n\.at\) FROM \(/,
	done => qr/^DELETE FROM eventbus\.deliveries WHERE ctid/,
	retry => qr/^UPDATE eventbus\.deliveries d SET next_attempt_at = s\.next/,
	dead => qr/^WITH s AS/,
	dead_letter => qr/^INSERT INTO eventbus\.dead_letters/,
	reconcile => qr/^UPDATE eventbus\.deliveries d SET leased_until = NULL FROM \(SELECT l\.row_ctid/,
	# rows claimed beyond a target's limit (only a race brings them now)
	release => qr/^UPDATE eventbus\.deliveries d SET attempts = d\.attempts - 1/,
	# the maintenance process's probe for due schedules (every second)
	schedule_due => qr/^SELECT sc\.bus, sc\.rule, sc\.next_run_at/,
	# rows of held targets past their max_event_age (every 10 s)
	expire_held => qr/^WITH held AS/,
);
my @required = qw(claim forget next_due done retry dead dead_letter schedule_due);

# What is wrong with a plan: reading events or deliveries other than by a
# probe with an index condition or by TID.  Returns a reason, or undef.
my $table = qr/(?:events|deliveries|schedules)\w*/;
sub whole_read
{
	my ($plan) = @_;
	my @lines = split /\n/, $plan;
	for my $i (0 .. $#lines)
	{
		my $l = $lines[$i];
		return "a sequential scan: $l" if $l =~ /Seq Scan on $table\b/;
		return "a bitmap scan: $l" if $l =~ /Bitmap (?:Heap|Index) Scan on $table\b/;
		return "a merge join: $l" if $l =~ /Merge (?:Left |Right |Anti |Semi |Full )?Join/;
		if ($l =~ /^(\s*(?:->\s+)?)Index (?:Only )?Scan(?: Backward)? using \w+ on $table\b/)
		{
			# its details are the following lines indented deeper, up to the next node
			my $depth = length($1);
			my $cond = 0;
			for my $j ($i + 1 .. $#lines)
			{
				my ($ind) = $lines[$j] =~ /^(\s*)/;
				last if length($ind) <= $depth || $lines[$j] =~ /^\s*->/;
				$cond = 1 if $lines[$j] =~ /^\s*Index Cond:/;
			}
			return "an index scan without an index condition: $l" unless $cond;
		}
		if ($l =~ /^(\s*)(?:->\s+)?Hash(?:Aggregate| |$)/ && $l !~ /Hash (?:\w+ )?Join/)
		{
			my $depth = length($1);
			for my $j ($i + 1 .. $#lines)
			{
				my ($ind) = $lines[$j] =~ /^(\s*)/;
				last if length($ind) <= $depth;
				return "a hash over $1: $l" if $lines[$j] =~ /\bon ($table)\b/;
			}
		}
	}
	return undef;
}

# Whether every index scan of deliveries in a plan is a probe of
# deliveries_target_due_idx whose condition starts with the target (an
# index scan with a condition on next_attempt_at alone reads the whole
# index), and there is at least one.
sub queue_by_target
{
	my ($plan) = @_;
	my @lines = split /\n/, $plan;
	my $scans = 0;
	for my $i (0 .. $#lines)
	{
		next unless $lines[$i] =~ /^(\s*(?:->\s+)?)Index (?:Only )?Scan(?: Backward)? using (\w+) on deliveries\b/;
		my ($depth, $index) = (length($1), $2);
		return 0 unless $index eq 'deliveries_target_due_idx';
		my $cond = '';
		for my $j ($i + 1 .. $#lines)
		{
			my ($ind) = $lines[$j] =~ /^(\s*)/;
			last if length($ind) <= $depth || $lines[$j] =~ /^\s*->/;
			$cond = $1 if $lines[$j] =~ /^\s*Index Cond: (.*)$/;
		}
		return 0 unless $cond =~ /^\(\(bus = \S+\) AND \(rule = \S+\) AND \(target_id = \S+\)/;
		$scans++;
	}
	return $scans > 0;
}

# Checks the plans the worker ran from byte $offset of the log.
sub check_plans
{
	my ($label, $offset, @need) = @_;
	my @plans = plans_since($offset);
	for my $kind (sort keys %kinds)
	{
		my @mine = grep { $_->[0] =~ $kinds{$kind} } @plans;
		if (grep { $_ eq $kind } @need)
		{
			ok(scalar @mine > 0, "$label: the $kind statement ran and was logged");
		}
		next unless @mine;
		my ($bad) = grep { defined whole_read($_->[1]) } @mine;
		ok(!$bad, "$label: $kind reaches events and deliveries by probes only")
		  or diag(whole_read($bad->[1]) . "\n" . $bad->[1]);
	}

	# Probes of the queue go through the target index, one target at a
	# time: a probe of another index (next_attempt_at alone, say) with the
	# target as a filter walks the rows of every other target in its range
	# -- a backlog of a target at its limit or paused, on every claim.
	for my $kind (qw(claim next_due reconcile))
	{
		my @mine = grep { $_->[0] =~ $kinds{$kind} } @plans;
		my ($bad) = grep { !queue_by_target($_->[1]) } @mine;
		ok(!$bad, "$label: $kind probes the queue by target only")
		  or diag($bad->[1]);
	}
	my @claims = grep { $_->[0] =~ $kinds{claim} } @plans;
	ok(!grep({ $_->[1] !~ /Index Cond: \(\(bus = (\w+)\.bus\) AND \(rule = \1\.rule\) AND \(target_id = \1\.target_id\) AND \(next_attempt_at >= .*\) AND \(next_attempt_at <= now\(\)\)\)/ } @claims),
		"$label: claim: one probe of the target index per target");
	return @plans;
}

# 1. Planned against a vacuumed, empty queue; the first settle sees one row.
my $offset = 0;
work(1);
work(50);
my @plans = check_plans('empty queue', $offset, @required, 'reconcile', 'expire_held');
my @done = grep { $_->[0] =~ $kinds{done} } @plans;
ok(!grep({ $_->[1] !~ /Index Cond: \(id = s\.id\)/ || $_->[1] !~ /Tid Scan on deliveries/ } @done),
	'done: id probes, then one TID scan');
ok(!grep({ $_->[1] !~ /Tid Scan on deliveries/ }
		grep { $_->[0] =~ $kinds{retry} || $_->[0] =~ $kinds{dead} } @plans),
	'retry and dead letters: rows reached by ctid');
my @claims = grep { $_->[0] =~ $kinds{claim} } @plans;
ok(!grep({ $_->[1] !~ /Index Cond: \(\(id = l\.event_id\) AND \(published_at = l\.event_published_at\)\)|Index Cond: \(id = l\.event_id\)/ } @claims),
	'claim: the event by a probe of its primary key');
my @expire = grep { $_->[0] =~ $kinds{expire_held} } @plans;
ok(!grep({ $_->[1] !~ /Index Cond: \(\(bus = h\.bus\) AND \(rule = h\.rule\) AND \(target_id = h\.target_id\)\)/ } @expire),
	'expire_held: one probe of the target index per held target');

SKIP:
{
	# a query of ours, to know whether this server can JIT at all
	$node->safe_psql('postgres', 'SELECT sum(g) FROM generate_series(1, 1000) AS g');
	my ($ours) = grep { $_->[0] =~ /generate_series\(1, 1000\)/ } plans_since(0);
	skip 'this server cannot JIT (llvmjit not installed)', 1
	  unless $ours && $ours->[1] =~ /^JIT:/m;
	my @jit = grep { my $p = $_; $p->[1] =~ /^JIT:/m && grep { $p->[0] =~ $_ } values %kinds }
	  plans_since(0);
	is(scalar @jit, 0, 'no statement of the worker is JIT-compiled');
}

# 2.-5. The worker restarts (and plans again) with misleading statistics;
# then the tables grow and it works on with those plans.
my @scenarios = (
	[ 'analyzed empty, then grown' => sub {
		empty_tables();
		$node->safe_psql('postgres', 'VACUUM ANALYZE eventbus.events, eventbus.deliveries, eventbus.schedules');
	  }, 1 ],
	[ 'analyzed with ten rows, then grown' => sub {
		empty_tables();
		grow(10, 10);
		$node->safe_psql('postgres', 'ANALYZE eventbus.events, eventbus.deliveries, eventbus.schedules');
	  }, 1 ],
	[ 'truncated, then grown' => sub {
		$node->safe_psql('postgres', 'ANALYZE eventbus.events, eventbus.deliveries, eventbus.schedules');
		empty_tables();
	  }, 1 ],
	[ 'a queue larger than the archive' => sub {
		empty_tables();
		grow(10, $rows);
		$node->safe_psql('postgres', 'ANALYZE eventbus.events, eventbus.deliveries, eventbus.schedules');
	  }, 0 ],
	# a target down or paused with a backlog when autovacuum analyzed the
	# queue: to the planner every row belongs to the target it is asked
	# about, whichever that is (bench-steady (e) found the claim walking
	# a paused target's backlog on every claim for the others this way)
	[ 'analyzed while one target held the whole queue' => sub {
		empty_tables();
		$node->safe_psql('postgres', qq{
SET session_replication_role = replica;
INSERT INTO eventbus.deliveries (event_id, event_published_at, bus, rule, target_id, next_attempt_at)
SELECT gen_random_uuid(), now(), 'default', 'held', 'held', now() - interval '1 minute'
FROM generate_series(1, $rows) g;
});
		$node->safe_psql('postgres', 'ANALYZE eventbus.events, eventbus.deliveries, eventbus.schedules');
	  }, 0 ],
);
for my $s (@scenarios)
{
	my ($label, $setup, $then_grow) = @$s;
	$setup->();
	$node->restart;
	# the plans are made now, on these statistics
	work(1);
	$offset = -s $node->logfile;
	grow($rows, $rows) if $then_grow;
	is($node->safe_psql('postgres',
		"SELECT count(*) >= $rows FROM eventbus.deliveries"), 't',
		"$label: the queue holds $rows rows");
	work(50);
	check_plans($label, $offset, @required);
}

$node->stop;
done_testing();
