# A delivery that carries its envelope (deliveries.envelope: a redriven dead
# letter whose event has left the archive) is sent with that envelope as
# its body and the webhook-id of its event id, without its event; if it
# fails for good, its dead letter keeps that envelope.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('envelope');
add_target($node, 'kept', 'test.kept', 'kept', $sink->url('/kept'));
add_target($node, 'gone', 'test.gone', 'gone', $sink->url('/status/404'));

my $id = '01a23c61-6b8d-7fd7-b297-2c5fd40aef99';
my $envelope = qq({"id": "$id", "time": "2026-01-01T00:00:00Z", "detail": {"n": 1}, "region": "local", "source": "test.kept", "account": "000000000000", "version": "0", "resources": [], "detail-type": "Kept"});
$node->safe_psql('postgres', qq{
INSERT INTO eventbus.deliveries (event_id, event_published_at, envelope, bus, rule, target_id)
VALUES ('$id', '2026-01-01', '$envelope', 'default', 'kept', 'kept'),
       ('$id', '2026-01-01', '$envelope', 'default', 'gone', 'gone');
SELECT eventbus.wake_workers();
});
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'), 'both settled');
my ($req) = @{ $sink->received('/kept') };
ok($req, 'the envelope was sent although its event is not in the archive');
is($req->{body}, $node->safe_psql('postgres', "SELECT '$envelope'::jsonb::text"),
	'the body is the envelope the row carries');
my $digest = $node->safe_psql('postgres',
	"SELECT 'msg_' || left(encode(sha256(convert_to('$id/default/kept/kept', 'UTF8')), 'hex'), 32)");
is($req->{headers}{'webhook-id'}, $digest, 'webhook-id of its event id');
is($node->safe_psql('postgres',
	"SELECT event = '$envelope'::jsonb, error_code FROM eventbus.dead_letters WHERE target_id = 'gone'"),
	't|NO_RESOURCE', 'its dead letter keeps the envelope');

$node->stop;
done_testing();
