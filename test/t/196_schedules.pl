# Schedules: the maintenance process fires a due scheduled rule with one
# Scheduled Event (EventBridge's envelope, the scheduled time, the rule's
# ARN) that reaches that rule's targets only, through the usual delivery
# and statistics; a rule that missed hours of ticks fires once; while
# another session holds a due schedule, no one else fires it, so two
# firing processes never send one time twice.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('schedules');

ok(wait_for_value($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus maintenance'", '1'),
	'the maintenance process runs');

my $tick_url = $sink->url('/tick');
my $aws_url = $sink->url('/aws');
my $hourly_url = $sink->url('/hourly');
$node->safe_psql('postgres', qq{
SELECT eventbus.put_rule('tick', schedule => 'rate(1 minute)');
SELECT eventbus.put_target('tick', 'tick-target', '$tick_url');
-- a pattern that matches Scheduled Events, were they matched
SELECT eventbus.put_rule('aws-all', '{"source": ["aws.events"]}');
SELECT eventbus.put_target('aws-all', 'aws-target', '$aws_url');
-- another scheduled rule, not due
SELECT eventbus.put_rule('hourly', schedule => 'cron(0 * * * ? *)');
SELECT eventbus.put_target('hourly', 'hourly-target', '$hourly_url');
});

# make tick due 30 seconds ago: the scheduled time its event carries
my $due = $node->safe_psql('postgres', q{
UPDATE eventbus.schedules SET next_run_at = date_trunc('second', now()) - interval '30 seconds'
WHERE rule = 'tick'
RETURNING to_char(next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')});
is($sink->wait_count('/tick', 1, 30), 1, 'the due rule fired');
my $body = decode_json($sink->received('/tick')->[0]{body});
is($body->{source}, 'aws.events', 'source aws.events');
is($body->{'detail-type'}, 'Scheduled Event', 'detail-type Scheduled Event');
is_deeply($body->{resources}, ['arn:aws:events:local:000000000000:rule/tick'], 'resources: the rule\'s ARN');
is_deeply($body->{detail}, {}, 'detail {}');
is($body->{time}, $due, 'time: the scheduled time, not when it ran');
is($node->safe_psql('postgres', q{
SELECT to_char(last_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       next_run_at > now(), next_run_at <= now() + interval '1 minute'
FROM eventbus.schedules WHERE rule = 'tick'}), "$due|t|t",
	'last_run_at is the scheduled time; next_run_at the next minute after now');
ok(wait_for_value($node, q{SELECT count(*) FROM eventbus.deliveries}, '0'), 'the delivery settled');
is($sink->count('/aws'), 0, 'a rule whose pattern matches the event received nothing');
is($sink->count('/hourly'), 0, 'the other scheduled rule received nothing');
ok(wait_for_value($node, q{
SELECT string_agg(rule || '=' || matched_events, ',' ORDER BY rule) FROM eventbus.rule_stats},
		'aws-all=0,hourly=0,tick=1'),
	'counted as a match of its own rule only');
is($node->safe_psql('postgres', q{SELECT put_events FROM eventbus.bus_stats WHERE bus = 'default'}),
	'1', 'counted as an event put on the bus');

# hours of missed ticks (a server that was down): one event, not one per tick
$node->safe_psql('postgres', q{
UPDATE eventbus.schedules SET next_run_at = now() - interval '5 hours' WHERE rule = 'tick'});
is($sink->wait_count('/tick', 2, 30), 2, 'the overdue rule fired');
sleep(3);
is($sink->count('/tick'), 2, 'once, for 300 missed ticks');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM eventbus.events WHERE source = 'aws.events'}), '2', 'two Scheduled Events in all');
is($node->safe_psql('postgres', q{
SELECT next_run_at > now() AND next_run_at <= now() + interval '1 minute'
FROM eventbus.schedules WHERE rule = 'tick'}), 't', 'next_run_at is the first tick after now');

# two firing processes: a session holds the row of a schedule that falls
# due meanwhile; the maintenance process and another session pass it by;
# released, it fires once
my ($in, $out) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-f', '-' ],
	'<', \$in, '>', \$out, '2>', \$out);
$in .= q{UPDATE eventbus.schedules SET next_run_at = clock_timestamp() + interval '2 seconds' WHERE rule = 'tick';
BEGIN;
SELECT 'locked:' || rule FROM eventbus.schedules WHERE rule = 'tick' FOR UPDATE;
};
$h->pump until $out =~ /locked:tick|ERROR/;
like($out, qr/locked:tick/, 'a session holds the schedule');
sleep(4);	# due now; the maintenance process's steps ran meanwhile
is($node->safe_psql('postgres', q{SELECT next_run_at < now() FROM eventbus.schedules WHERE rule = 'tick'}),
	't', 'the held schedule is due');
# (a step that waited for the row would fail here, not hang)
my ($rc, $stepped) = $node->psql('postgres',
	"SET statement_timeout = '10s'; SELECT eventbus.schedule_step()");
is($stepped, '0', 'another session\'s step passes the held schedule by');
is($sink->count('/tick'), 2, 'no one fired it while it was held');
$in .= "COMMIT;\n";
$h->finish;
is($sink->wait_count('/tick', 3, 30), 3, 'released, it fired');
sleep(2);
is($sink->count('/tick'), 3, 'once');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM eventbus.events WHERE source = 'aws.events'}), '3', 'three Scheduled Events in all');
is($sink->count('/aws') + $sink->count('/hourly'), 0, 'still nothing for the other rules');

# a disabled rule's time passes without an event; enabled again, it fires
$node->safe_psql('postgres', q{
SELECT eventbus.disable_rule('tick');
UPDATE eventbus.schedules SET next_run_at = now() - interval '1 minute' WHERE rule = 'tick'});
ok(wait_for_value($node, q{
SELECT next_run_at > now() FROM eventbus.schedules WHERE rule = 'tick'}, 't', 30),
	'the disabled rule\'s due time passed');
is($sink->count('/tick'), 3, 'without an event');

$node->stop;
done_testing();
