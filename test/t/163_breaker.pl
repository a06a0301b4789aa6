# Circuit breakers and held targets.  A target that answers 503 with
# 10,000 queued events gets a handful of requests -- the failures that open
# its breaker and one probe per cool-down -- instead of 10,000 x retries;
# the rows it did not get keep their attempts (0); once it answers again
# the first probe closes the breaker and every event is delivered exactly
# once (one 2xx per webhook-id), none dead-lettered.  disable_target holds
# a target (no request at all) and enable_target releases it; a held
# target's row past its max_event_age is dead-lettered by the worker's
# sweep.
use strict;
use warnings;

use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use EventbusTest;

my $events = 10000;
my $sink = start_sink();
my $node = new_node('breaker', conf => q{
eventbus.breaker_cooldown = '1s'
eventbus.breaker_max_cooldown = '4s'
});
my $http = HTTP::Tiny->new;

# the target is down: every request is answered 503
ok($http->get($sink->url('/_fail/503'))->{success}, 'the sink answers 503 to everything');
add_target($node, 'flaky', 'test.flaky', 'flaky', $sink->url('/flaky'));
publish($node, 'test.flaky', $events);

# it stays down for 12 s
sleep(12);
my $down_requests = $sink->count('/flaky');
note("target down for 12 s with $events queued events: $down_requests requests");
cmp_ok($down_requests, '>=', 5, 'the failures that open the breaker were sent');
cmp_ok($down_requests, '<=', 40,
	'a down target gets a handful of requests, not the backlog times its retries');
is($node->safe_psql('postgres',
	"SELECT breaker_state <> 'closed' AND consecutive_failures >= 5 AND breaker_opened_at IS NOT NULL"
	  . " FROM eventbus.target_stats WHERE target_id = 'flaky'"),
	't', 'target_stats shows the breaker open, its failures and when it opened');
like($node->safe_psql('postgres', 'SELECT eventbus.metrics()'),
	qr/^eventbus_breaker_open\{bus="default",rule="flaky",target="flaky"\} 1$/m,
	'metrics() has the breaker open as a gauge');
my ($rows, $attempts, $untouched) = split /\|/, $node->safe_psql('postgres',
	"SELECT count(*), sum(attempts), count(*) FILTER (WHERE attempts = 0)"
	  . " FROM eventbus.deliveries WHERE target_id = 'flaky'");
is($rows, $events, 'every delivery is still queued');
is($attempts, $sink->count('/flaky'), 'an attempt was counted only for a request sent');
cmp_ok($untouched, '>=', $events - 40, 'the rows that waited kept their attempts');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'), '0',
	'nothing dead-lettered while the breaker was open');

# the target comes back
ok($http->get($sink->url('/_fail/0'))->{success}, 'the sink answers 200 again');
my $back = time();
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'flaky'", '0', 90),
	'the backlog drains after the target is back');
note(sprintf('drained %d events in %.1f s after the target came back', $events, time() - $back));
my %ok;
my $failed_requests = 0;
for my $r (@{ $sink->received('/flaky') })
{
	if ($r->{status} == 200) { $ok{ $r->{headers}{'webhook-id'} }++ }
	else { $failed_requests++ }
}
is(scalar(keys %ok), $events, 'every event was delivered');
is(scalar(grep { $_ != 1 } values %ok), 0, 'each exactly once (one 200 per webhook-id)');
note("requests that failed in all: $failed_requests");
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'), '0',
	'none dead-lettered');
is($node->safe_psql('postgres',
	"SELECT breaker_state, consecutive_failures FROM eventbus.target_stats WHERE target_id = 'flaky'"),
	'closed|0', 'the breaker is closed again');
like($node->safe_psql('postgres', 'SELECT eventbus.metrics()'),
	qr/^eventbus_breaker_open\{bus="default",rule="flaky",target="flaky"\} 0$/m,
	'metrics() has it closed');

# disable_target holds the target; enable_target releases it
$node->safe_psql('postgres', "SELECT eventbus.disable_target('flaky', 'flaky')");
my $before = $sink->count('/flaky');
publish($node, 'test.flaky', 5);
sleep(3);
is($sink->count('/flaky'), $before, 'a disabled target gets no request');
is($node->safe_psql('postgres',
	"SELECT count(*), sum(attempts) FROM eventbus.deliveries WHERE target_id = 'flaky'"),
	'5|0', 'its deliveries wait, without attempts');
is($node->safe_psql('postgres',
	"SELECT enabled FROM eventbus.target_stats WHERE target_id = 'flaky'"), 'f',
	'target_stats shows it disabled');
$node->safe_psql('postgres', "SELECT eventbus.enable_target('flaky', 'flaky')");
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'flaky'", '0', 30),
	'enable_target releases them');
is($sink->count('/flaky'), $before + 5, 'each sent once');

# max_event_age still applies to a held target: the worker's sweep
$node->safe_psql('postgres', "SELECT eventbus.disable_target('flaky', 'flaky')");
publish($node, 'test.flaky', 1);
$node->safe_psql('postgres',
	"UPDATE eventbus.deliveries SET event_published_at = event_published_at - interval '25 hours'"
	  . " WHERE target_id = 'flaky'");
ok(wait_for_value($node,
	"SELECT error_code || ' ' || exhausted_condition || ' ' || attempts FROM eventbus.dead_letters",
	'TARGET_HELD MaximumEventAgeInSeconds 0', 30),
	"the worker dead-letters a held target's row past its max_event_age");
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.deliveries'), '0',
	'and it left the queue');
is($sink->count('/flaky'), $before + 5, 'without a request');

$node->stop;
done_testing();
