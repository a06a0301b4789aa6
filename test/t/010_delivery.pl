# Deliveries reach the target exactly as specified, exactly once each.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('delivery');

# the worker is visible in pg_stat_activity
ok(wait_for_value($node,
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type LIKE '%eventbus%'", 't'),
	'worker shows in pg_stat_activity');
is($node->safe_psql('postgres',
	"SELECT backend_type FROM pg_stat_activity WHERE backend_type LIKE '%eventbus%' LIMIT 1"),
	'pg_eventbus delivery worker', 'backend_type names the worker');

# one event: method, headers and body
add_target($node, 'shape', 'test.shape', 'shape', $sink->url('/shape'),
	http_method => 'PUT',
	headers => '{"Authorization": "Bearer s3cret", "X-Empty": ""}');
my $id = publish($node, 'test.shape', 1)->[0];
is($sink->wait_count('/shape', 1), 1, 'one request received');
my $req = $sink->received('/shape')->[0];
is($req->{method}, 'PUT', 'http_method used');
is($req->{headers}{'content-type'}, 'application/json', 'Content-Type');
is($req->{headers}{'user-agent'}, 'pg_eventbus/0.1.0', 'User-Agent');
is($req->{headers}{authorization}, 'Bearer s3cret', 'target header sent');
ok(exists $req->{headers}{'x-empty'}, 'empty target header sent');
like($req->{headers}{'webhook-id'}, qr/^msg_[0-9a-f]{32}$/, 'webhook-id');
ok(abs($req->{headers}{'webhook-timestamp'} - time()) < 60, 'webhook-timestamp is now');
ok(!exists $req->{headers}{expect}, 'no Expect header');
my $envelope = $node->safe_psql('postgres',
	"SELECT eventbus.envelope(e)::text FROM eventbus.events e WHERE id = '$id'");
is_deeply(decode_json($req->{body}), decode_json($envelope), 'body is the envelope');
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'),
	'delivery settled');

# a rolled-back publish is never delivered
$node->safe_psql('postgres', q{
BEGIN;
SELECT eventbus.put_event('test.shape', 'Rolled Back', '{}');
ROLLBACK;
});
publish($node, 'test.shape', 1);
$sink->wait_count('/shape', 2);
sleep 1;
is($sink->count('/shape'), 2, 'rolled-back event not delivered');
ok(!grep({ $_->{body} =~ /Rolled Back/ } @{ $sink->received('/shape') }),
	'no request for the rolled-back event');

# 1,000 events, each delivered exactly once, no failures
add_target($node, 'bulk', 'test.bulk', 'bulk', $sink->url('/bulk'));
my $ids = publish($node, 'test.bulk', 1000);
is(scalar @$ids, 1000, '1000 events published');
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE rule = 'bulk'", '0', 120),
	'all deliveries settled');
my %seen;
$seen{ decode_json($_->{body})->{id} }++ for @{ $sink->received('/bulk') };
is(scalar(keys %seen), 1000, '1000 distinct events received');
is(scalar(grep { $seen{$_} != 1 } keys %seen), 0, 'each exactly once');
is(scalar(grep { !$seen{$_} } @$ids), 0, 'every published event received');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'),
	'0', 'no dead letters');

# webhook-id is stable per (event, target) and differs between events
my %wid;
$wid{ $_->{headers}{'webhook-id'} }++ for @{ $sink->received('/bulk') };
is(scalar(keys %wid), 1000, 'webhook-id differs per event');

$node->stop;
done_testing();
