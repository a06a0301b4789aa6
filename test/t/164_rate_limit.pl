# A target's rate limit holds across workers: with two workers and a
# backlog, a target limited to 20 requests a second receives 20 a second
# (within 15% over 5 s, after the first second), the requests over the
# rate wait in the queue without being counted as attempts, and every
# event is delivered once.  A target without a limit on the same bus is
# not slowed by it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use EventbusTest;

my $rate = 20;
my $backlog = 200;
my $sink = start_sink();
my $node = new_node('ratelimit', conf => q{
eventbus.workers = 2
});
ok(wait_for_value($node,
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'",
	'2', 30), 'two workers run');
add_target($node, 'limited', 'test.limited', 'limited', $sink->url('/limited'),
	rate_limit => $rate);
add_target($node, 'free', 'test.free', 'free', $sink->url('/free'));

publish($node, 'test.limited', $backlog);
publish($node, 'test.free', 200);
ok($sink->wait_count('/free', 200, 30) >= 200, 'the target without a limit is served at once');

# 1 + 5 s of requests to the limited target
ok($sink->wait_count('/limited', 1, 30) >= 1, 'the limited target gets requests');
sleep(7);
my @times = sort { $a <=> $b } map { $_->{time} } @{ $sink->received('/limited') };
my $t0 = $times[0] + 1;
my $in_window = grep { $_ >= $t0 && $_ < $t0 + 5 } @times;
my $measured = $in_window / 5;
note(sprintf('rate_limit %d/s with 2 workers: %.1f/s measured over 5 s (%.3f of the limit)',
	$rate, $measured, $measured / $rate));
cmp_ok(abs($measured - $rate) / $rate, '<=', 0.15, 'the delivered rate is within 15% of the limit');
cmp_ok($node->safe_psql('postgres',
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'limited'"), '>', 0,
	'the rows over the rate wait in the queue');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'limited' AND attempts > 0"
	  . " AND leased_until IS NULL"),
	'0', 'without an attempt counted');
cmp_ok($node->safe_psql('postgres',
	"SELECT rate_limited FROM eventbus.target_stats WHERE target_id = 'limited'"), '>', 0,
	'target_stats counts the claims the rate limit cut short');

# the rest goes out at the same rate, each once
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'limited'", '0', 60),
	'the backlog drains');
my %ids;
$ids{ $_->{headers}{'webhook-id'} }++ for @{ $sink->received('/limited') };
is(scalar(keys %ids), $backlog, 'every event delivered');
is(scalar(grep { $_ != 1 } values %ids), 0, 'each once');
is($node->safe_psql('postgres',
	"SELECT invocation_attempts, retry_invocation_attempts FROM eventbus.target_stats WHERE target_id = 'limited'"),
	"$backlog|0", 'one attempt per event: waiting for the rate is not an attempt');

$node->stop;
done_testing();
