# Input transformation through real deliveries: a target with an
# input_transformer receives the filled template (values escaped inside
# strings, rule name and ARN), a plain-text template goes out as
# text/plain, input sends a constant and input_path a part of the event;
# a path missing under MissingPath "dead-letter" dead-letters the event
# without a request; a signed target with a transformer is signed over the
# transformed body (Standard Webhooks' reference library verifies it).
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $webhooks_dir = abs_path(dirname(__FILE__) . '/../webhooks');
if (!-d "$webhooks_dir/node_modules/standardwebhooks")
{
	my ($out, $err);
	my $cache = PostgreSQL::Test::Utils::tempdir();
	my $ok = IPC::Run::run(
		[ 'npm', 'ci', '--no-audit', '--no-fund', '--cache', $cache ],
		'>', \$out, '2>', \$err, init => sub { chdir $webhooks_dir });
	diag("npm ci: $out$err") unless $ok;
}

my $sink = start_sink(raw => 1);
my $node = new_node('transform');

sub sql
{
	my ($q) = @_;
	return $node->safe_psql('postgres', $q);
}

# Publishes one event from $source with $detail (SQL jsonb text) and
# returns the request it caused at $path.
sub deliver_one
{
	my ($source, $detail, $path) = @_;
	my $before = $sink->count($path);
	sql("SELECT eventbus.put_event('$source', 'Order Placed', '$detail'::jsonb)");
	is($sink->wait_count($path, $before + 1), $before + 1, "a request reached $path");
	return $sink->received($path)->[$before];
}

my $detail = q({"order": {"id": "o-1", "note": "say \\"hi\\"\\nbye"}, "items": [{"sku": "A"}, {"sku": "B"}]});

# a JSON template: values as JSON, escaped inside strings, the rule's name and ARN
sql(q{SELECT eventbus.put_rule('tr', '{"source": ["com.example.tr"]}', bus => 'default')});
sql("SELECT eventbus.put_target('tr', 'tpl', '" . $sink->url('/tpl') . q{',
	input_transformer => '{"InputPathsMap": {"id": "$.detail.order.id", "note": "$.detail.order.note",
		"sku": "$.detail.items[1].sku", "items": "$.detail.items"},
		"InputTemplate": "{\"text\": \"Order <id>: <note>\", \"sku\": <sku>, \"items\": <items>, \"rule\": \"<aws.events.rule-name>\", \"arn\": <aws.events.rule-arn>, \"at\": <aws.events.event.ingestion-time>}"}')});
my $req = deliver_one('com.example.tr', $detail, '/tpl');
my $body = decode_json($req->{body});
is($body->{text}, "Order o-1: say \"hi\"\nbye", 'a value inside a string is escaped and reads back as it was');
is($body->{sku}, 'B', 'an array index');
is_deeply($body->{items}, [ { sku => 'A' }, { sku => 'B' } ], 'an array as a JSON value');
is($body->{rule}, 'tr', '<aws.events.rule-name>');
my ($region, $account) = split /\|/, sql("SELECT e->>'region', e->>'account' FROM (SELECT eventbus.envelope(ev) e FROM eventbus.events ev ORDER BY ev.published_at DESC LIMIT 1) x");
is($body->{arn}, "arn:aws:events:$region:$account:rule/tr", '<aws.events.rule-arn> of the default bus: the event\'s region and account');
like($body->{at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, '<aws.events.event.ingestion-time>');
is(scalar keys %$body, 6, 'only the template (no envelope)');
is($req->{headers}{'content-type'}, 'application/json', 'a JSON template: application/json');
like($req->{headers}{'webhook-id'}, qr/^msg_[0-9a-f]{32}$/, 'the webhook-id is still sent');

# a plain-text template
sql("SELECT eventbus.put_target('tr', 'text', '" . $sink->url('/text') . q{',
	input_transformer => '{"InputPathsMap": {"id": "$.detail.order.id"}, "InputTemplate": "Order <id> placed"}')});
$req = deliver_one('com.example.tr', $detail, '/text');
is($req->{body}, 'Order o-1 placed', 'a plain-text template is sent as it is');
is($req->{headers}{'content-type'}, 'text/plain; charset=utf-8', 'a plain-text template: text/plain');

# input: a constant; input_path: a part of the event
sql("SELECT eventbus.put_target('tr', 'const', '" . $sink->url('/const') . q{', input => '{"ping": [1, true]}')});
sql("SELECT eventbus.put_target('tr', 'path', '" . $sink->url('/path') . q{', input_path => '$.detail.order')});
sql("SELECT eventbus.put_target('tr', 'tpl', '" . $sink->url('/none') . q{')});
my $before_const = $sink->count('/const');
my $before_path = $sink->count('/path');
my $before_none = $sink->count('/none');
sql("SELECT eventbus.put_event('com.example.tr', 'Order Placed', '$detail'::jsonb)");
$sink->wait_count('/const', $before_const + 1);
$sink->wait_count('/path', $before_path + 1);
$sink->wait_count('/none', $before_none + 1);
is_deeply(decode_json($sink->received('/const')->[-1]{body}), { ping => [ 1, JSON::PP::true ] },
	'input: the constant is the body');
is_deeply(decode_json($sink->received('/path')->[-1]{body}),
	{ id => 'o-1', note => "say \"hi\"\nbye" }, 'input_path: the part of the event is the body');
my $env = decode_json($sink->received('/none')->[-1]{body});
is($env->{source}, 'com.example.tr', 'put_target without a transformation: the envelope again');
sql("SELECT eventbus.delete_rule('tr')");

# MissingPath "dead-letter": no request, a dead letter saying which path
sql(q{SELECT eventbus.put_rule('dl', '{"source": ["com.example.dl"]}')});
sql("SELECT eventbus.put_target('dl', 'strict', '" . $sink->url('/strict') . q{',
	input_transformer => '{"InputPathsMap": {"c": "$.detail.customer"}, "MissingPath": "dead-letter",
		"InputTemplate": "{\"customer\": <c>}"}')});
sql(q{SELECT eventbus.put_event('com.example.dl', 'Order Placed', '{"order": 1}')});
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'strict'", '1'),
	'a missing path under MissingPath dead-letter is dead-lettered');
my $dead = dead_letters($node, "target_id = 'strict'")->[0];
is($dead->{error_code}, 'INTERNAL_FAILURE', 'its error code');
like($dead->{error_message}, qr/the path \$\.detail\.customer of variable c is not in the event/,
	'its message names the path');
is($dead->{attempts}, 1, 'not retried');
is($sink->count('/strict'), 0, 'no request was sent');
# the same event with the path goes out
my $ok_req = deliver_one('com.example.dl', '{"customer": "c-9"}', '/strict');
is($ok_req->{body}, '{"customer": "c-9"}', 'with the path present it is delivered');

# a signed target with a transformer: the signature covers the transformed body
sql(q{SELECT eventbus.put_rule('sig', '{"source": ["com.example.sig"]}')});
sql("SELECT eventbus.put_target('sig', 'signed', '" . $sink->url('/signed') . q{',
	input_transformer => '{"InputPathsMap": {"id": "$.detail.order.id"}, "InputTemplate": "{\"order\": \"<id>\"}"}')});
my $secret = sql("SELECT eventbus.rotate_signing_secret('sig', 'signed')");
$req = deliver_one('com.example.sig', $detail, '/signed');
is($req->{body}, '{"order": "o-1"}', 'the signed target receives the transformed body');
my $input = encode_json({ secret => $secret,
	requests => [ { headers => $req->{headers}, body_base64 => $req->{body_base64} } ] });
my ($out, $err);
IPC::Run::run([ 'node', "$webhooks_dir/verify.mjs" ], '<', \$input, '>', \$out, '2>', \$err)
  or die "verify.mjs failed: $err";
is($out, "ok\n", 'the reference library verifies the signature over the transformed body');

$sink->stop;
$node->stop;
done_testing();
