# Retries, the failure kinds and their dead letters.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('retries');

# one dead letter of target $t, once every delivery of it has settled
sub dead_letter_of
{
	my ($t) = @_;
	wait_for_value($node,
		"SELECT count(*) FROM eventbus.deliveries WHERE target_id = '$t'", '0');
	my $dl = dead_letters($node, "target_id = '$t'");
	is(scalar @$dl, 1, "$t: one dead letter");
	return $dl->[0] // {};
}

# 500 then 200: delivered after a retry, same webhook-id on both attempts
add_target($node, 'flaky', 'test.flaky', 'flaky', $sink->url('/status/500-then-500-then-200'));
publish($node, 'test.flaky', 1);
is($sink->wait_count('/status/500-then-500-then-200', 3), 3, 'flaky: three attempts');
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE rule = 'flaky'", '0'),
	'flaky: settled');
my @flaky = @{ $sink->received('/status/500-then-500-then-200') };
is($flaky[-1]{status}, 200, 'flaky: last attempt succeeded');
is(scalar(keys %{ { map { $_->{headers}{'webhook-id'} => 1 } @flaky } }), 1,
	'flaky: same webhook-id on every attempt');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters WHERE rule = 'flaky'"),
	'0', 'flaky: no dead letter');

# always 500 with max_retry_attempts => 2: exactly 3 attempts
add_target($node, 'down', 'test.down', 'down', $sink->url('/status/500?body=oops'),
	max_retry_attempts => 2);
my $down_id = publish($node, 'test.down', 1)->[0];
my $dl = dead_letter_of('down');
is($dl->{exhausted_condition}, 'MaximumRetryAttempts', 'down: MaximumRetryAttempts');
is($dl->{error_code}, 'ERROR_FROM_TARGET', 'down: ERROR_FROM_TARGET');
is($dl->{attempts}, 3, 'down: attempts recorded');
is($dl->{http_status}, 500, 'down: http_status');
is($dl->{response_excerpt}, 'oops', 'down: response_excerpt');
is($dl->{endpoint}, $sink->url('/status/500?body=oops'), 'down: endpoint');
is($dl->{event}{id}, $down_id, 'down: event is the envelope');
ok(defined $dl->{first_attempt_at} && defined $dl->{failed_at}, 'down: times');
is($sink->count('/status/500?'), 3, 'down: exactly 3 requests');

# 400: non-retryable, one attempt
add_target($node, 'bad', 'test.bad', 'bad', $sink->url('/status/400'));
publish($node, 'test.bad', 1);
$dl = dead_letter_of('bad');
is($dl->{exhausted_condition}, 'NonRetryable', '400: NonRetryable');
is($dl->{error_code}, 'ERROR_FROM_TARGET', '400: ERROR_FROM_TARGET');
is($dl->{attempts}, 1, '400: one attempt');
is($sink->count('/status/400'), 1, '400: one request');

# 404 and a redirect (never followed)
add_target($node, 'gone', 'test.gone', 'gone', $sink->url('/status/404'));
add_target($node, 'moved', 'test.moved', 'moved', $sink->url('/status/302'));
publish($node, 'test.gone', 1);
publish($node, 'test.moved', 1);
$dl = dead_letter_of('gone');
is($dl->{error_code}, 'NO_RESOURCE', '404: NO_RESOURCE');
$dl = dead_letter_of('moved');
is("$dl->{exhausted_condition} $dl->{http_status} $dl->{attempts}", 'NonRetryable 302 1',
	'302: not followed, not retried');

# 429 is retried (THROTTLING when exhausted)
add_target($node, 'busy', 'test.busy', 'busy', $sink->url('/status/429'),
	max_retry_attempts => 1);
publish($node, 'test.busy', 1);
$dl = dead_letter_of('busy');
is("$dl->{error_code} $dl->{exhausted_condition} $dl->{attempts}",
	'THROTTLING MaximumRetryAttempts 2', '429: retried, THROTTLING');

# a timeout
add_target($node, 'slow', 'test.slow', 'slow', $sink->url('/delay/3000'),
	timeout => '300ms', max_retry_attempts => 0);
publish($node, 'test.slow', 1);
$dl = dead_letter_of('slow');
is("$dl->{error_code} $dl->{exhausted_condition}", 'TIMEOUT MaximumRetryAttempts',
	'timeout: TIMEOUT');
ok(!defined $dl->{http_status}, 'timeout: no http_status');

# a refused connection, retried
add_target($node, 'refused', 'test.refused', 'refused', 'http://127.0.0.1:1/',
	max_retry_attempts => 1);
publish($node, 'test.refused', 1);
$dl = dead_letter_of('refused');
is("$dl->{error_code} $dl->{exhausted_condition} $dl->{attempts}",
	'CONNECTION_FAILURE MaximumRetryAttempts 2', 'refused: retried, CONNECTION_FAILURE');
like($dl->{error_message}, qr/127\.0\.0\.1/, 'refused: message names the endpoint');

# a connection closed without an answer
add_target($node, 'hangup', 'test.hangup', 'hangup', $sink->url('/close'),
	max_retry_attempts => 0);
publish($node, 'test.hangup', 1);
$dl = dead_letter_of('hangup');
is($dl->{error_code}, 'CONNECTION_FAILURE', 'closed connection: CONNECTION_FAILURE');

# a name that does not resolve: dead at once
add_target($node, 'nodns', 'test.nodns', 'nodns', 'http://nonexistent.invalid/');
publish($node, 'test.nodns', 1);
$dl = dead_letter_of('nodns');
is("$dl->{error_code} $dl->{exhausted_condition} $dl->{attempts}",
	'INVALID_PARAMETER NonRetryable 1', 'DNS failure: INVALID_PARAMETER, not retried');

# max_event_age: an event published long ago is not retried
add_target($node, 'old', 'test.old', 'old', $sink->url('/status/503'),
	max_event_age => '60 seconds');
# (published ten minutes ago: inserted so, as an UPDATE of published_at
# would move the row to another partition and match it a second time)
$node->safe_psql('postgres', q{
INSERT INTO eventbus.events (id, bus, source, detail_type, detail, "time", account, region, published_at)
VALUES (gen_random_uuid(), 'default', 'test.old', 'Old Event', '{}', now() - interval '10 minutes',
		'000000000000', 'local', now() - interval '10 minutes');
});
$dl = dead_letter_of('old');
is("$dl->{exhausted_condition} $dl->{attempts}", 'MaximumEventAgeInSeconds 1',
	'max_event_age ends the retries');

# Retry-After is honoured (bounded by retry_max_delay, raised here)
$node->append_conf('postgresql.conf', "eventbus.retry_max_delay = '10s'");
$node->reload;
sleep 1;
add_target($node, 'later', 'test.later', 'later', $sink->url('/status/503-then-200?retry_after=2'));
publish($node, 'test.later', 1);
is($sink->wait_count('/status/503-then-200', 2), 2, 'retry-after: delivered on the 2nd attempt');
my @later = @{ $sink->received('/status/503-then-200') };
my $gap = $later[1]{time} - $later[0]{time};
ok($gap >= 1.8 && $gap < 6, "retry-after: waited as asked ($gap s)");

# a delivery queued for a target that is deleted meanwhile: a publisher
# matched the target, the target is removed while the publisher's
# transaction is open (the removal cannot see its row), then it commits.
# The worker finds the row through eventbus.deleted_targets: TargetDeleted.
add_target($node, 'ghost', 'test.ghost', 'ghost', $sink->url('/ghost'));
{
	my ($in, $out) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', '-' ],
		'<', \$in, '>', \$out, '2>', \$out);
	$in .= "BEGIN;\nSELECT eventbus.put_event('test.ghost', 'Ghost', '{}') IS NOT NULL;\n";
	$h->pump until $out =~ /^t$/m;
	$node->safe_psql('postgres', "SELECT eventbus.remove_target('ghost', 'ghost')");
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM eventbus.deleted_targets WHERE target_id = 'ghost'"), '1',
		'ghost: the deleted target is remembered');
	$in .= "COMMIT;\n";
	$h->finish;
}
$dl = dead_letter_of('ghost');
is("$dl->{error_code} $dl->{exhausted_condition}", 'TARGET_DELETED TargetDeleted',
	'ghost: TargetDeleted');
is($sink->count('/ghost'), 0, 'ghost: nothing sent');
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deleted_targets WHERE target_id = 'ghost'", '0', 15),
	'ghost: forgotten once no row of it can come');

# a target removed while its request is in flight: the answer decides.
# A failure is dead-lettered as TargetDeleted (the row comes back to the
# claim, which finds no target); a 2xx is a delivery, never a dead letter.
my $pid = worker_pid($node);
add_target($node, 'vanish', 'test.vanish', 'vanish', $sink->url('/delay/2000/500'));
publish($node, 'test.vanish', 1);
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'vanish' AND leased_until IS NOT NULL", '1'),
	'removed target, failing: request in flight');
$node->safe_psql('postgres', "SELECT eventbus.remove_target('vanish', 'vanish')");
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'vanish'", '1', 15),
	'removed target, failed request: one dead letter');
$dl = dead_letters($node, "target_id = 'vanish'");
is($dl->[0]{exhausted_condition}, 'TargetDeleted', 'removed target: TargetDeleted');
add_target($node, 'answered', 'test.answered', 'answered', $sink->url('/delay/2000/200'));
publish($node, 'test.answered', 1);
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'answered' AND leased_until IS NOT NULL", '1'),
	'removed target, answering: request in flight');
$node->safe_psql('postgres', "SELECT eventbus.remove_target('answered', 'answered')");
is($sink->wait_count('/delay/2000/200', 1), 1, 'removed target, answering: the request arrived');
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'answered'", '0', 15),
	'removed target, answered 2xx: settled');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'answered'"),
	'0', 'removed target, answered 2xx: delivered, not dead-lettered');
is(worker_pid($node), $pid, 'worker survived settling rows of removed targets');

# redrive: the dead letters of "down" delivered, with the same webhook-id
my $first_wid = $sink->received('/status/500?')->[0]{headers}{'webhook-id'};
$node->safe_psql('postgres',
	"SELECT eventbus.put_target('down', 'down', '" . $sink->url('/redriven') . "')");
is($node->safe_psql('postgres', "SELECT eventbus.redrive_dead_letters(rule => 'down')"),
	'1', 'redrive: one dead letter re-queued');
is($sink->wait_count('/redriven', 1), 1, 'redrive: delivered');
is($sink->received('/redriven')->[0]{headers}{'webhook-id'}, $first_wid,
	'redrive: same webhook-id as before');
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE rule = 'down'", '0'),
	'redrive: settled');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters WHERE rule = 'down'"),
	'0', 'redrive: no dead letter left');

$node->stop;
done_testing();
