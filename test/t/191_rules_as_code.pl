# Rules as code across databases: a bus exported from one database and
# applied to another is the same bus there (the same document comes back,
# and events published there reach the targets with the document's
# headers); applying it twice changes nothing the second time; prune
# deletes what the document does not name and dead-letters pending
# deliveries, and dry_run says so, with the counts, and changes nothing.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
# the worker serves "postgres"; the source database "src" has no worker,
# so its deliveries stay pending
my $node = new_node('rules_as_code');
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pg_eventbus');

my $url = $sink->url('/orders');
$node->safe_psql(
	'src', qq{
SELECT eventbus.create_event_bus('orders');
SELECT eventbus.put_rule('placed', '{"source": ["com.example.orders"], "detail-type": ["Order Placed"]}',
	bus => 'orders', description => 'orders to fulfilment');
SELECT eventbus.put_target('placed', 'fulfil', '$url', bus => 'orders',
	headers => '{"Authorization": "Bearer t0ken", "X-Team": "fulfilment"}',
	max_retry_attempts => 7, max_event_age => '2 hours', timeout => '3 seconds', http_method => 'put');
SELECT eventbus.put_rule('quiet', '{"source": [{"prefix": "com.example."}]}', bus => 'orders', state => 'DISABLED');
SELECT eventbus.put_target('quiet', 'audit', '$url/audit', bus => 'orders');
SELECT eventbus.put_rule('default-rule', '{"source": ["x"]}');
SELECT eventbus.put_target('default-rule', 'signed', '$url/signed');
SELECT eventbus.rotate_signing_secret('default-rule', 'signed') IS NOT NULL;
});

# What must be the same on both sides: everything but the signing secrets,
# which are never exported and never made by apply().
# ("default" is the first bus, its one rule has the signed target)
my $same = q{SELECT eventbus.export(header_values => true) #- '{buses,0,rules,0,targets,0,signing}'};

my $doc = $node->safe_psql('src', 'SELECT eventbus.export(header_values => true)');
my $masked = $node->safe_psql('src', 'SELECT eventbus.export()');
unlike($masked, qr/t0ken/, 'the default export holds no header value');
like($doc, qr/Bearer t0ken/, 'export(header_values => true) holds them');
unlike($doc . $masked, qr/whsec_/, 'no export holds a signing secret');

# a masked document cannot make headers in a database that has none
my ($ret, $out, $err) = $node->psql('postgres', "SELECT eventbus.apply('$masked')");
isnt($ret, 0, 'a masked document is refused where the target has no value');
like($err, qr/header "Authorization" of target "fulfil" is masked in the document/,
	'the error names the header and the target');
like($err, qr/DETAIL:  At \$\.buses\[1\]\.rules\[0\]\.targets\[0\]\.headers\."Authorization"\./,
	'the DETAIL gives its path');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.buses WHERE name = 'orders'"),
	'0', 'and nothing was made');

# dry_run: the list of what apply would do, and nothing done
my $dry = decode_json($node->safe_psql('postgres', "SELECT eventbus.apply('$doc', dry_run => true)"));
is_deeply(
	[ map { "$_->{action} $_->{kind} $_->{name}" } @$dry ],
	[
		'create bus orders', 'create rule default-rule',
		'create rule placed', 'create rule quiet',
		'create target signed', 'create target fulfil',
		'create target audit'
	],
	'dry_run lists the creations: buses, then rules, then targets');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.rules'), '0',
	'dry_run made nothing');

($ret, $out, $err) = $node->psql('postgres', "SELECT eventbus.apply('$doc')");
is($ret, 0, 'the document applies to the other database');
is(decode_json($out)->[0]{action}, 'create', 'and says what it made');
like($err, qr/NOTICE:  target "signed" of rule "default-rule" on event bus "default" is signed in the document but has no signing secret here/,
	'a NOTICE says a signed target has no secret there');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.signing_secrets'), '0',
	'apply makes no secret');
is($node->safe_psql('postgres', $same), $node->safe_psql('src', $same),
	'the bus is reproduced: both databases export the same document');
is($node->safe_psql('postgres', "SELECT eventbus.apply('$doc')"), '[]',
	'applying it twice changes nothing the second time');
is($node->safe_psql('postgres', "SELECT eventbus.apply('$masked')"), '[]',
	'nor does the masked document, once the values are there');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.targets WHERE updated_at <> created_at'),
	'0', 'no row was touched by the second applies');

# the reproduced bus delivers, with the document's method and headers
$node->safe_psql('postgres',
	q{SELECT eventbus.put_event('com.example.orders', 'Order Placed', '{"order": 1}', bus => 'orders')});
is($sink->wait_count('/orders', 1), 1, 'an event published there reaches the target');
my $req = $sink->received('/orders')->[0];
is($req->{method}, 'PUT', 'with the http_method of the document');
is($req->{headers}{authorization}, 'Bearer t0ken', 'and its headers');

# prune and dry_run where deliveries are pending: in "src" (no worker)
$node->safe_psql('src',
	q{SELECT eventbus.put_event('com.example.orders', 'Order Placed', jsonb_build_object('i', g), bus => 'orders')
	  FROM generate_series(1, 3) g});
is($node->safe_psql('src', "SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'fulfil'"),
	'3', 'three deliveries are pending in src');
my $smaller = $node->safe_psql('src',
	q{SELECT jsonb_set(eventbus.export(), '{buses,1,rules}',
		(SELECT jsonb_agg(r) FROM jsonb_array_elements(eventbus.export() #> '{buses,1,rules}') r
		 WHERE r ->> 'name' <> 'placed'))});
my $would = decode_json($node->safe_psql('src', "SELECT eventbus.apply('$smaller', prune => true, dry_run => true)"));
is_deeply(
	[ map { "$_->{action} $_->{kind} $_->{name}" . (exists $_->{dead_lettered} ? " $_->{dead_lettered}" : '') } @$would ],
	[ 'delete target fulfil 3', 'delete rule placed' ],
	'dry_run with prune: the target (and the 3 deliveries it would dead-letter), then its rule');
is($node->safe_psql('src', 'SELECT count(*) FROM eventbus.dead_letters'), '0',
	'dry_run dead-lettered nothing');
is($node->safe_psql('src', "SELECT count(*) FROM eventbus.rules WHERE name = 'placed'"), '1',
	'and deleted nothing');
my $did = decode_json($node->safe_psql('src', "SELECT eventbus.apply('$smaller', prune => true)"));
is_deeply($did, $would, 'apply with prune did what dry_run said');
is($node->safe_psql('src',
		"SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'fulfil' AND error_code = 'TARGET_DELETED'"),
	'3', 'the pending deliveries are dead letters');
is($node->safe_psql('src', "SELECT eventbus.apply('$smaller', prune => true)"), '[]',
	'pruning again changes nothing');

# prune never deletes "default", and deletes other buses the document does not name
my $only_default = decode_json($node->safe_psql('postgres',
	q{SELECT eventbus.apply('{"version": 1, "buses": [{"name": "default"}]}', prune => true)}));
is_deeply(
	[ map { "$_->{action} $_->{kind} $_->{name}" } @$only_default ],
	[
		'delete target signed', 'delete target fulfil',
		'delete target audit', 'delete rule default-rule',
		'delete rule placed', 'delete rule quiet',
		'delete bus orders'
	],
	'prune: targets, then rules, then buses');
is($node->safe_psql('postgres', 'SELECT string_agg(name, \',\') FROM eventbus.buses'), 'default',
	'"default" stays');

$sink->stop;
$node->stop;
done_testing();
