# A long transaction (a report, pg_dump) holds back vacuum, so the index
# entries of every row delivered meanwhile stay.  The claim must not walk
# them: each target's claim starts at its low mark, after what the worker
# already took, and the lease is a HOT update that adds no index entry.
# With a REPEATABLE READ transaction open, rounds of deliveries go out;
# auto_explain (ANALYZE, BUFFERS) logs every claim, and the claims of the
# last round may not read many more buffers than those of the first.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use EventbusTest;

my $rounds = 5;
my $per_round = 3000;
my $sink = start_sink();
my $node = new_node('longtx', conf => q{
shared_preload_libraries = 'pg_eventbus,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_analyze = on
auto_explain.log_buffers = on
auto_explain.log_timing = off
});
add_target($node, 'r', 'test.r', 'r', $sink->url('/r'));

# the long transaction: a snapshot held open in another session
my ($in, $out) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-f', '-' ],
	'<', \$in, '>', \$out, '2>', \$out);
$in .= "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM eventbus.buses;\n";
$h->pump until $out =~ /^\d+$/m;
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"), '1',
	'a REPEATABLE READ transaction is open');

# the buffers each claim read, from byte $offset of the log
sub claim_buffers
{
	my ($offset) = @_;
	my @b;
	for my $plan (split /LOG:\s+duration: /, slurp_file($node->logfile, $offset))
	{
		next unless $plan =~ /Query Text: WITH (?:RECURSIVE )?queued/;
		my ($hit, $read) = (0, 0);
		# the statement's own line comes first: the whole claim
		($hit) = $plan =~ /Buffers: shared hit=(\d+)/;
		($read) = $plan =~ /Buffers: shared (?:hit=\d+ )?read=(\d+)/;
		# and the rows it returned, on its top node
		my ($rows) = $plan =~ /actual rows=(\d+)/;
		push @b, [ ($hit // 0) + ($read // 0), $rows // 0 ];
	}
	return @b;
}

my (@per_row, @worst);
for my $round (1 .. $rounds)
{
	my $offset = -s $node->logfile;
	publish($node, 'test.r', $per_round);
	ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0', 120),
		"round $round: $per_round delivered");
	my @c = claim_buffers($offset);
	my ($buffers, $rows, $max) = (0, 0, 0);
	for (@c)
	{
		$buffers += $_->[0];
		$rows += $_->[1];
		$max = $_->[0] if $_->[0] > $max;
	}
	ok($rows >= $per_round, "round $round: its claims were logged");
	push @per_row, $rows ? $buffers / $rows : 0;
	push @worst, $max;
	note(sprintf("round %d: %d claims took %d rows, %.2f buffers per row, at most %d in one claim",
		$round, scalar(@c), $rows, $per_row[-1], $max));
}

# What the claims of a round read per row they took, and the most one
# claim read, may not grow with the dead versions the rounds before left:
# by round $rounds, 4 x $per_round rows delivered under the open snapshot
# are in the queue's indexes, so a claim that walked them (from the start
# of a target's rows, or over the whole index to find deleted targets)
# would read thousands of buffers more.
cmp_ok($per_row[-1], "<=", 1.1 * $per_row[0] + 0.5,
	sprintf("claims in round %d read per row about what they read in round 1 (%.2f -> %.2f buffers)",
		$rounds, $per_row[0], $per_row[-1]));
cmp_ok($worst[-1], "<=", 2 * $worst[0] + 200,
	"no claim in round $rounds reads much more than the largest of round 1 ($worst[0] -> $worst[-1] buffers)");

$in .= "COMMIT;\n";
$h->finish;
$node->stop;
done_testing();
