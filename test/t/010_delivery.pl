# Deliveries reach the target exactly as specified, exactly once each.
use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use Encode qw(encode);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('delivery');

# the worker is visible in pg_stat_activity
ok(wait_for_value($node,
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'", 't'),
	'worker shows in pg_stat_activity');
is($node->safe_psql('postgres',
	"SELECT backend_type FROM pg_stat_activity WHERE backend_type LIKE '%eventbus delivery%' LIMIT 1"),
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
is($req->{headers}{'user-agent'}, 'pg_eventbus/0.2.0', 'User-Agent');
is($req->{headers}{authorization}, 'Bearer s3cret', 'target header sent');
ok(exists $req->{headers}{'x-empty'}, 'empty target header sent');
like($req->{headers}{'webhook-id'}, qr/^msg_[0-9a-f]{32}$/, 'webhook-id');
ok(abs($req->{headers}{'webhook-timestamp'} - time()) < 60, 'webhook-timestamp is now');
ok(!exists $req->{headers}{expect}, 'no Expect header');
my $envelope = $node->safe_psql('postgres',
	"SELECT eventbus.envelope(e)::text FROM eventbus.events e WHERE id = '$id'");
is(encode('UTF-8', $req->{body}), $envelope, 'body is the envelope, byte for byte');
is($req->{headers}{'webhook-id'}, webhook_id($id, 'default', 'shape', 'shape'),
	'webhook-id is the documented digest');
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'),
	'delivery settled');

# the worker writes the envelope itself: the same text as eventbus.envelope()
# for awkward events (escapes, non-ASCII, numbers, the first second of year
# 1, a detail stored out of line, replay-name), and the same webhook-id as
# the SQL digest
add_target($node, 'odd', 'test.odd', 'odd.target-1', $sink->url('/odd'));
my @odd = map { $node->safe_psql('postgres', "SELECT eventbus.put_event($_)") } (
	q|'test.odd', E'Odd "type"\n\t\u00e9', '{"n": 1.50, "big": 12345678901234567890, |
	  . q|"s": "a\"b\\\\c\u00e9\u2028\u0001", "arr": [1, null, true, {"k": []}], "e": {}}', |
	  . q|ARRAY['arn:a"b', E'x\\\\y', 'ü', ''], "time" => '0001-01-01 00:00:00+00'|,
	# about 200 KB that does not compress: the detail is stored out of line
	q|'test.odd', 'Big', jsonb_build_object('hex', (SELECT string_agg(md5(g::text), '')|
	  . q| FROM generate_series(1, 6000) g))|);
# rows put_event refuses (an era, an infinite or a five-digit year, 2-D
# resources), stored directly as a database from 0.1.0 may hold them: the
# body says "time": null and flattens the resources, as envelope() does
$node->safe_psql('postgres', q{
INSERT INTO eventbus.events (id, bus, source, detail_type, resources, detail, "time", account, region, replay_name)
VALUES ('00000000-0000-4000-8000-000000000001', 'default', 'test.odd', 'Replayed', '{}', '{"r": 1}',
	'2026-01-02 03:04:05+00', '123456789012', 'eu-west-1', 'nightly "replay"'),
	('00000000-0000-4000-8000-000000000002', 'default', 'test.odd', 'Era', '{}', '{}',
	'0044-03-15 12:00:00+00 BC', '123456789012', 'eu-west-1', NULL),
	('00000000-0000-4000-8000-000000000003', 'default', 'test.odd', 'Infinite', '{{a,b},{"",NULL}}', '{}',
	'infinity', '123456789012', 'eu-west-1', NULL),
	('00000000-0000-4000-8000-000000000004', 'default', 'test.odd', 'Far', '{}', '{"x": [1.0e3, -0, 2e-7]}',
	'12345-06-07 08:09:10.999+00', '123456789012', 'eu-west-1', NULL);
});
push @odd, map { "00000000-0000-4000-8000-00000000000$_" } 1 .. 4;
is($sink->wait_count('/odd', 6), 6, 'awkward events received');
my %odd_body = map { decode_json(encode('UTF-8', $_->{body}))->{id} => $_ } @{ $sink->received('/odd') };
for my $oid (@odd)
{
	my $want = $node->safe_psql('postgres',
		"SELECT eventbus.envelope(e)::text FROM eventbus.events e WHERE id = '$oid'");
	is(encode('UTF-8', $odd_body{$oid}{body}), $want, "envelope text of $oid");
	is($odd_body{$oid}{headers}{'webhook-id'},
		webhook_id($oid, 'default', 'odd', 'odd.target-1'), "webhook-id of $oid");
}
is_deeply([ map { decode_json(encode('UTF-8', $odd_body{"00000000-0000-4000-8000-00000000000$_"}{body}))->{time} } 2 .. 4 ],
	[ undef, undef, undef ], 'times an envelope cannot spell are null');
is_deeply(decode_json(encode('UTF-8', $odd_body{'00000000-0000-4000-8000-000000000003'}{body}))->{resources},
	[ 'a', 'b', '', undef ], '2-D resources are flattened');
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'),
	'delivery settled');

# an event deleted from the archive before its delivery is not sent: the
# delivery is dead-lettered (INTERNAL_FAILURE) with the event's id
my $gone = $node->safe_psql('postgres', q{
BEGIN;
SELECT eventbus.put_event('test.odd', 'Gone', '{}') AS id \gset
DELETE FROM eventbus.events WHERE id = :'id';
COMMIT;
SELECT :'id';
});
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.dead_letters WHERE event_id = '$gone'", '1'),
	'delivery of a deleted event dead-lettered');
is($node->safe_psql('postgres', qq{
SELECT error_code, exhausted_condition, attempts, event = jsonb_build_object('id', event_id)
FROM eventbus.dead_letters WHERE event_id = '$gone'}),
	'INTERNAL_FAILURE|NonRetryable|1|t', 'as an internal failure, without a request');
is($sink->count('/odd'), 6, 'nothing sent for it');
$node->safe_psql('postgres', "DELETE FROM eventbus.dead_letters WHERE event_id = '$gone'");

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

# The webhook-id README documents: "msg_" and the first 32 hex digits of the
# SHA-256 of "event_id/bus/rule/target_id" in UTF-8.
sub webhook_id
{
	my ($event_id, $bus, $rule, $target_id) = @_;
	return 'msg_' . substr(sha256_hex(encode('UTF-8', "$event_id/$bus/$rule/$target_id")), 0, 32);
}
