# Signed requests (Standard Webhooks): real deliveries to the sink, each
# verified with the specification's reference library (the npm package
# standardwebhooks, test/webhooks/verify.mjs) before, during and after a
# rotation, with a tampered body and a wrong secret; at most 10 signatures,
# the oldest dropped; signing removed; secrets gone with their target; and
# no secret in the server log or the dead letters.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use MIME::Base64 ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use EventbusTest;

my $webhooks_dir = abs_path(dirname(__FILE__) . '/../webhooks');

# the reference library, installed from the pinned package-lock.json
if (!-d "$webhooks_dir/node_modules/standardwebhooks")
{
	my ($out, $err);
	my $cache = PostgreSQL::Test::Utils::tempdir();
	my $ok = IPC::Run::run(
		[ 'npm', 'ci', '--no-audit', '--no-fund', '--cache', $cache ],
		'>', \$out, '2>', \$err, init => sub { chdir $webhooks_dir });
	diag("npm ci: $out$err") unless $ok;
}
ok(-d "$webhooks_dir/node_modules/standardwebhooks",
	'the standardwebhooks package is installed (npm ci in test/webhooks)');

# Runs the reference verifier with $secret over the requests; returns one
# "ok" or "rejected: ..." per request.
sub verify
{
	my ($secret, @requests) = @_;
	my $input = encode_json(
		{
			secret => $secret,
			requests => [
				map { { headers => $_->{headers}, body_base64 => $_->{body_base64} } }
				  @requests
			]
		});
	my ($out, $err);
	IPC::Run::run([ 'node', "$webhooks_dir/verify.mjs" ],
		'<', \$input, '>', \$out, '2>', \$err)
	  or die "verify.mjs failed: $err";
	return [ split /\n/, $out ];
}

# The signatures of a request's webhook-signature header.
sub signatures
{
	my ($req) = @_;
	my $h = $req->{headers}{'webhook-signature'};
	return defined $h ? [ split / /, $h ] : [];
}

my $sink = start_sink(raw => 1);
my $node = new_node(
	'signatures',
	no_extension => 1,
	conf => qq{
log_statement = 'all'
log_min_messages = debug1
log_error_verbosity = verbose
});

sub sql
{
	my ($q) = @_;
	return $node->safe_psql('postgres', $q);
}

# Publishes one event from $source and returns the request it caused at
# $path (the n-th there).
sub deliver_one
{
	my ($source, $path) = @_;
	my $before = $sink->count($path);
	publish($node, $source, 1);
	is($sink->wait_count($path, $before + 1), $before + 1,
		"a request reached $path");
	return $sink->received($path)->[$before];
}

sql('CREATE EXTENSION pg_eventbus');
add_target($node, 'sig', 'sig', 'signed', $sink->url('/signed'));
sql("SELECT eventbus.put_target('sig', 'plain', '" . $sink->url('/plain') . "')");
my $req;

# unsigned until the first secret
$req = deliver_one('sig', '/signed');
ok(!exists $req->{headers}{'webhook-signature'},
	'without a secret: no signature');

# the first secret: one signature
my $s1 = sql("SELECT eventbus.rotate_signing_secret('sig', 'signed')");
like($s1, qr{^whsec_[A-Za-z0-9+/]{43}=$}, 'a secret is whsec_ and the base64 of 32 bytes');
my $before = deliver_one('sig', '/signed');
like($before->{headers}{'webhook-id'}, qr/^msg_[0-9a-f]{32}$/, 'webhook-id');
like($before->{headers}{'webhook-timestamp'}, qr/^[0-9]+$/, 'webhook-timestamp: unix seconds');
ok(abs($before->{headers}{'webhook-timestamp'} - time()) < 60, 'webhook-timestamp is now');
like($before->{headers}{'webhook-signature'}, qr{^v1,[A-Za-z0-9+/]{43}=$},
	'before the rotation: one v1 signature');
my $plain = $sink->received('/plain')->[-1];
ok(!exists $plain->{headers}{'webhook-signature'}, 'a target without a secret is not signed');

# a rotation: both sign during the grace period
my $s2 = sql("SELECT eventbus.rotate_signing_secret('sig', 'signed', grace => '8 seconds')");
isnt($s2, $s1, 'the rotation returns a new secret');
is(sql("SELECT count(*) FROM eventbus.signing_secrets WHERE target_id = 'signed'"),
	'2', 'during the grace: two secrets in the view');
my $during = deliver_one('sig', '/signed');
is(scalar @{ signatures($during) }, 2, 'during the grace: two signatures');

# after the grace: the new one alone
ok(wait_for_value($node,
		"SELECT count(*) FROM eventbus.signing_secrets WHERE target_id = 'signed'", '1', 30),
	'the grace ends');
my $after = deliver_one('sig', '/signed');
is(scalar @{ signatures($after) }, 1, 'after the grace: one signature');

my %tampered_body = (%$during, body_base64 =>
	  MIME::Base64::encode_base64(MIME::Base64::decode_base64($during->{body_base64}) . ' ', ''));
my %tampered_time = (%$during,
	headers => { %{ $during->{headers} },
		'webhook-timestamp' => $during->{headers}{'webhook-timestamp'} - 1 });
is_deeply(
	verify($s1, $before, $during, $after, \%tampered_body, \%tampered_time),
	[
		'ok', 'ok',
		'rejected: No matching signature found',
		'rejected: No matching signature found',
		'rejected: No matching signature found'
	],
	'the old secret verifies before and during the grace, not after; a tampered body or timestamp is rejected'
);
is_deeply(
	verify($s2, $before, $during, $after, \%tampered_body),
	[
		'rejected: No matching signature found',
		'ok', 'ok',
		'rejected: No matching signature found'
	],
	'the new secret verifies during and after the grace, not before; a tampered body is rejected');
my $wrong = 'whsec_' . MIME::Base64::encode_base64('w' x 32, '');
is_deeply(verify($wrong, $before, $during, $after),
	[ ('rejected: No matching signature found') x 3 ],
	'a wrong secret verifies nothing');

# at most 10 signatures: the oldest drop first
my @secrets = ($s2);
push @secrets, sql("SELECT eventbus.rotate_signing_secret('sig', 'signed', grace => '1 hour')")
  for 1 .. 11;
is(sql("SELECT count(*) FROM eventbus.signing_secrets WHERE target_id = 'signed'"),
	'10', 'twelve secrets made in the grace: ten kept');
my $many = deliver_one('sig', '/signed');
is(scalar @{ signatures($many) }, 10, 'ten signatures');
is_deeply(verify($secrets[-1], $many), ['ok'], 'the newest secret verifies');
is_deeply(verify($secrets[2], $many), ['ok'], 'the tenth newest verifies');
is_deeply(verify($secrets[1], $many), ['rejected: No matching signature found'],
	'the eleventh newest was dropped');
is_deeply(verify($secrets[0], $many), ['rejected: No matching signature found'],
	'the twelfth newest was dropped');

# grace 0: the previous ones stop at once
my $s3 = sql("SELECT eventbus.rotate_signing_secret('sig', 'signed', grace => '0')");
is(sql("SELECT count(*) FROM eventbus.signing_secrets WHERE target_id = 'signed'"),
	'1', 'grace 0: only the new secret signs');
my $now_one = deliver_one('sig', '/signed');
is_deeply(verify($s3, $now_one), ['ok'], 'grace 0: the new secret verifies');
is_deeply(verify($secrets[-1], $now_one), ['rejected: No matching signature found'],
	'grace 0: the previous one no longer does');
push @secrets, $s1, $s3;

# the secret survives put_target, and is deleted with delete_signing_secrets
sql("SELECT eventbus.put_target('sig', 'signed', '" . $sink->url('/signed') . "', timeout => '2 seconds')");
is_deeply(verify($s3, deliver_one('sig', '/signed')), ['ok'],
	'put_target keeps the secrets');
is(sql("SELECT eventbus.delete_signing_secrets('sig', 'signed')"), '1',
	'delete_signing_secrets removes the secret');
$req = deliver_one('sig', '/signed');
ok(!exists $req->{headers}{'webhook-signature'}, 'after delete_signing_secrets: unsigned');

# a signed target that fails: its dead letter holds no secret
add_target($node, 'bad', 'sig.bad', 'bad', $sink->url('/status/400'),
	max_retry_attempts => 0);
my $sbad = sql("SELECT eventbus.rotate_signing_secret('bad', 'bad')");
push @secrets, $sbad;
publish($node, 'sig.bad', 1);
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'bad'", '1'),
	'the failing signed target is dead-lettered');
my $dead = sql("SELECT d::text FROM eventbus.dead_letters d WHERE target_id = 'bad'");
is(scalar(grep { index($dead, substr($_, 6)) >= 0 } @secrets), 0,
	'the dead letter holds no secret');
unlike($dead, qr/v1,/, 'nor a signature');

# secrets go with their target
sql("SELECT eventbus.remove_target('bad', 'bad')");
is(sql("SELECT count(*) FROM eventbus.signing_keys WHERE target_id = 'bad'"), '0',
	'removing the target removes its secrets');
sql("SELECT eventbus.rotate_signing_secret('sig', 'signed')");
sql("SELECT eventbus.delete_rule('sig')");
is(sql("SELECT count(*) FROM eventbus.signing_keys"), '0',
	'deleting the rule removes its targets\' secrets');

# the server log (every statement, debug1) never shows a secret or its key
my $log = slurp_file($node->logfile);
ok(length($log) > 0 && $log =~ /rotate_signing_secret/, 'the log has the statements');
is(scalar(grep { index($log, substr($_, 6)) >= 0 } @secrets), 0,
	'no secret appears in the server log');

$sink->stop;
$node->stop;
done_testing();
