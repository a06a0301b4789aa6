# Batch targets (put_target's batch_size and batch_window): events of one
# target in one request, as a JSON array, sent when the batch is full or
# its window has passed; one webhook-id per batch, the same when the batch
# is retried whole; batchItemFailures retries only the events listed; the
# signature covers the batch's body; each event is dead-lettered alone.
#
# The worker polls only every 30 s here, so a batch that goes out when its
# window ends shows that the worker woke for the window.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_base64);
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use EventbusTest;

my $sink = start_sink(raw => 1);
my $node = new_node('batches',
	conf => "eventbus.poll_interval = '30s'\neventbus.retry_max_delay = '5s'\n");

# the event ids of a request's body (a JSON array of envelopes)
sub ids_of
{
	my ($req) = @_;
	my $items = decode_json($req->{body});
	return [ map { $_->{id} } @$items ];
}

sub settled
{
	my ($rule) = @_;
	return wait_for_value($node,
		"SELECT count(*) FROM eventbus.deliveries WHERE rule = '$rule'", '0');
}

# 250 events at batch_size 100: three requests of 100, 100 and 50, each
# event exactly once
add_target($node, 'bulk', 'test.bulk', 'bulk', $sink->url('/bulk'),
	batch_size => 100);
my $bulk_ids = publish($node, 'test.bulk', 250);
ok(settled('bulk'), 'bulk: settled');
my @bulk = @{ $sink->received('/bulk') };
is(scalar @bulk, 3, 'bulk: three requests');
is(join(',', sort { $a <=> $b } map { scalar @{ ids_of($_) } } @bulk), '50,100,100',
	'bulk: 100, 100 and 50 events');
is($bulk[0]{headers}{'content-type'}, 'application/json', 'bulk: a JSON body');
like($bulk[0]{body}, qr/^\[\{/, 'bulk: the body is an array of envelopes');
my %seen;
$seen{$_}++ for map { @{ ids_of($_) } } @bulk;
is(scalar(keys %seen), 250, 'bulk: every event arrived');
ok(!(grep { $_ != 1 } values %seen), 'bulk: each event exactly once');
is(join(',', sort keys %seen), join(',', sort @$bulk_ids), 'bulk: the events published');
is(scalar(keys %{ { map { $_->{headers}{'webhook-id'} => 1 } @bulk } }), 3,
	'bulk: one webhook-id per batch');
is($node->safe_psql('postgres',
		"SELECT invocations || ' ' || invocation_attempts FROM eventbus.target_stats WHERE target_id = 'bulk'"),
	'250 250', 'bulk: the counters count events');

# a window: 3 events with batch_size 100 and batch_window 2 s go out in one
# request once the window has passed (the worker wakes for it)
add_target($node, 'window', 'test.window', 'window', $sink->url('/window'),
	batch_size => 100, batch_window => '2 seconds');
my $t0 = time();
publish($node, 'test.window', 3);
is($sink->wait_count('/window', 1, 20), 1, 'window: a request');
my $wait = time() - $t0;
ok($wait >= 1.8, "window: sent after the window ($wait s)");
ok($wait < 10, "window: not at the next poll ($wait s)");
ok(settled('window'), 'window: settled');
my @window = @{ $sink->received('/window') };
is(scalar @window, 1, 'window: one request');
is(scalar @{ ids_of($window[0]) }, 3, 'window: the three events in it');

# batchItemFailures: only the events listed are retried, in a new batch
# with a new webhook-id; an identifier of no event is ignored
add_target($node, 'items', 'test.items', 'items', $sink->url('/batch-failures/2'),
	batch_size => 10);
publish($node, 'test.items', 5);
is($sink->wait_count('/batch-failures/2', 2, 30), 2, 'items: two requests');
ok(settled('items'), 'items: settled');
my @items = @{ $sink->received('/batch-failures/2') };
is(scalar @items, 2, 'items: exactly two requests');
my $first = ids_of($items[0]);
is(scalar @$first, 5, 'items: the first request carries the five events');
is(join(',', sort @{ ids_of($items[1]) }),
	join(',', sort @$first[0, 2, 4]), 'items: the retry carries the three listed');
isnt($items[1]{headers}{'webhook-id'}, $items[0]{headers}{'webhook-id'},
	'items: the retried events are a new batch, with a new webhook-id');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters WHERE rule = 'items'"),
	'0', 'items: no dead letter');
is($node->safe_psql('postgres',
		"SELECT string_agg(error_code, ',' ORDER BY error_code) FROM eventbus.delivery_attempts WHERE rule = 'items' AND error_code IS NOT NULL"),
	'BATCH_ITEM_FAILURE,BATCH_ITEM_FAILURE,BATCH_ITEM_FAILURE',
	'items: the attempt log lists the three failed items');
is($node->safe_psql('postgres',
		"SELECT invocation_attempts || ' ' || successful_invocation_attempts || ' ' || invocations FROM eventbus.target_stats WHERE target_id = 'items'"),
	'8 5 5', 'items: 8 attempts, 5 successful, 5 invocations');

# a 500 retries the whole batch, under the same webhook-id
add_target($node, 'flaky', 'test.flaky', 'flaky', $sink->url('/status/500-then-200'),
	batch_size => 10);
publish($node, 'test.flaky', 4);
is($sink->wait_count('/status/500-then-200', 2, 30), 2, 'flaky: two requests');
ok(settled('flaky'), 'flaky: settled');
my @flaky = @{ $sink->received('/status/500-then-200') };
is(scalar @flaky, 2, 'flaky: exactly two requests');
is("$flaky[0]{status} $flaky[1]{status}", '500 200', 'flaky: 500, then 200');
is($flaky[1]{headers}{'webhook-id'}, $flaky[0]{headers}{'webhook-id'},
	'flaky: the retry has the same webhook-id');
is(join(',', sort @{ ids_of($flaky[1]) }), join(',', sort @{ ids_of($flaky[0]) }),
	'flaky: the retry carries the same four events');

# a batch retried whole stays one batch when other events are due with it:
# 3 events fail (Retry-After: 2 s); 2 more are queued meanwhile and wait
# for their window; when the 3 are due again, all 5 are, and the 3 go out
# together under their webhook-id, the 2 in a batch of their own
my $regroup_path = '/status/500-then-200?retry_after=2';
add_target($node, 'regroup', 'test.regroup', 'regroup', $sink->url($regroup_path),
	batch_size => 3, batch_window => '3 seconds');
my $old_ids = publish($node, 'test.regroup', 3);
is($sink->wait_count($regroup_path, 1, 20), 1, 'regroup: the first batch');
my $new_ids = publish($node, 'test.regroup', 2);
ok(settled('regroup'), 'regroup: settled');
my @regroup = @{ $sink->received($regroup_path) };
my $old_id = $regroup[0]{headers}{'webhook-id'};
is(join(',', sort @{ ids_of($regroup[0]) }), join(',', sort @$old_ids),
	'regroup: the first request carries the first three');
my @old_again = grep { $_->{headers}{'webhook-id'} eq $old_id } @regroup;
is(scalar @old_again, 2, 'regroup: the first batch is sent twice under its webhook-id');
is(join(',', sort @{ ids_of($old_again[-1] // $regroup[0]) }), join(',', sort @$old_ids),
	'regroup: the retry carries the same three events, none of the two');
is(join(',', sort map { @{ ids_of($_) } } grep { $_->{headers}{'webhook-id'} ne $old_id } @regroup),
	join(',', sort((@$new_ids) x 2)), 'regroup: the two go out as a batch of their own (500, then 200)');

# the signature covers the batch's body
add_target($node, 'signed', 'test.signed', 'signed', $sink->url('/signed'),
	batch_size => 10);
my $secret = $node->safe_psql('postgres', "SELECT eventbus.rotate_signing_secret('signed', 'signed')");
publish($node, 'test.signed', 3);
is($sink->wait_count('/signed', 1, 30), 1, 'signed: a request');
my $signed = $sink->received('/signed')->[0];
my $body = decode_base64($signed->{body_base64});
is(scalar @{ decode_json($body) }, 3, 'signed: one batch of three');
(my $key = $secret) =~ s/^whsec_//;
my $mac = hmac_sha256_base64(
	"$signed->{headers}{'webhook-id'}.$signed->{headers}{'webhook-timestamp'}.$body",
	decode_base64($key));
$mac .= '=' while length($mac) % 4;
is($signed->{headers}{'webhook-signature'}, "v1,$mac", 'signed: the signature verifies over the batch');

# transformed bodies: JSON stays JSON, plain text becomes a JSON string
add_target($node, 'plain', 'test.plain', 'plain', $sink->url('/plain'),
	batch_size => 2,
	input_transformer => '{"InputPathsMap": {"s": "$.source"}, "InputTemplate": "from <s>"}');
publish($node, 'test.plain', 2);
is($sink->wait_count('/plain', 1, 30), 1, 'plain: a request');
is($sink->received('/plain')->[0]{body}, '["from test.plain","from test.plain"]',
	'plain: an array of JSON strings');

# a batch that fails for good: each event is dead-lettered
add_target($node, 'down', 'test.down', 'down', $sink->url('/status/503'),
	batch_size => 10, max_retry_attempts => 1);
my $down_ids = publish($node, 'test.down', 3);
ok(settled('down'), 'down: settled');
my @down = @{ $sink->received('/status/503') };
is(scalar @down, 2, 'down: two requests (one retry)');
is($down[1]{headers}{'webhook-id'}, $down[0]{headers}{'webhook-id'}, 'down: same webhook-id');
my $dl = dead_letters($node, "rule = 'down'");
is(scalar @$dl, 3, 'down: three dead letters');
is(join(',', sort map { $_->{event}{id} } @$dl), join(',', sort @$down_ids),
	'down: one per event');
ok(!(grep { $_->{attempts} != 2 || $_->{exhausted_condition} ne 'MaximumRetryAttempts' } @$dl),
	'down: each after two attempts, MaximumRetryAttempts');

$node->stop;
done_testing();
