# Connections: real deliveries with an API key, HTTP Basic and an OAuth
# client-credentials token from a real token endpoint (test/sink/oauth.py);
# header, query-string and body parameters; the token fetched once and
# shared by two workers, refreshed before it expires and once after a 401;
# a failing token endpoint deauthorizes the connection, whose deliveries
# then wait without burning attempts until it is authorized again, or
# until max_event_age dead-letters them; and no secret in the server log
# or the dead letters.
use strict;
use warnings;

use JSON::PP;
use MIME::Base64 ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use EventbusTest;

my $sink = start_sink();
my $oauth = start_sink(script => 'oauth.py');
my $node = new_node(
	'connections',
	conf => qq{
eventbus.workers = 2
log_statement = 'all'
log_min_messages = debug1
log_error_verbosity = verbose
});

my @secrets = qw(K-SECRET-1 HDR-SECRET-2 Q-SECRET-3 B-SECRET-4 B-PASS-5 CS-SECRET-6);

sub sql
{
	my ($q) = @_;
	return $node->safe_psql('postgres', $q);
}

# Statements that carry secrets are sent with statement logging off for
# the session: PostgreSQL logs what a client sends as the server is told
# to; the rule tested below is that the extension itself never does.
sub put_connection
{
	my ($args) = @_;
	sql("SET log_statement = 'none'; SELECT eventbus.put_connection($args);");
}

# Talks to the token endpoint's control paths.
sub oauth_config
{
	my ($json) = @_;
	my $url = $oauth->url('/_config');
	system('python3', '-c',
		"import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method='POST')).read()",
		$url, $json) == 0
	  or die "oauth config failed";
}

sub oauth_stats
{
	my $url = $oauth->url('/_stats');
	my $out = `python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())" '$url'`;
	return decode_json($out);
}

sub wait_until
{
	my ($what, $cond, $timeout) = @_;
	my $deadline = time() + ($timeout // 30);
	while (time() < $deadline)
	{
		return 1 if $cond->();
		usleep(100_000);
	}
	diag("timed out waiting for $what");
	return 0;
}

sub state_of
{
	my ($name) = @_;
	return sql("SELECT state FROM eventbus.connections WHERE name = '$name'");
}

# --- API_KEY with header, query-string and body parameters ---------------
put_connection(q{'apikey', 'API_KEY',
	'{"api_key_name": "X-Api-Key", "api_key_value": "K-SECRET-1"}',
	'{"header_parameters": [{"key": "X-Team", "value": "blue"},
							{"key": "X-Sig", "value": "HDR-SECRET-2", "is_value_secret": true}],
	  "query_string_parameters": [{"key": "a b", "value": "c&d"},
								  {"key": "token", "value": "Q-SECRET-3", "is_value_secret": true}],
	  "body_parameters": [{"key": "tenant", "value": "B-SECRET-4", "is_value_secret": true}]}'});
add_target($node, 'k', 'test.key', 'k', $sink->url('/key?x=1'), connection => 'apikey',
	headers => '{"X-Team": "red", "X-Other": "o"}');
publish($node, 'test.key', 1);
is($sink->wait_count('/key', 1), 1, 'API_KEY: delivered');
my ($req) = @{ $sink->received('/key') };
is($req->{headers}{'x-api-key'}, 'K-SECRET-1', 'API_KEY: the key header arrives');
is($req->{headers}{'x-team'}, 'blue', 'a header parameter wins over the target\'s header of that name');
is($req->{headers}{'x-other'}, 'o', 'the target\'s other headers are sent');
is($req->{headers}{'x-sig'}, 'HDR-SECRET-2', 'a secret header parameter arrives');
is($req->{path}, '/key?x=1&a%20b=c%26d&token=Q-SECRET-3',
	'query-string parameters are appended, percent-encoded, after the endpoint\'s own');
my $body = decode_json($req->{body});
is($body->{tenant}, 'B-SECRET-4', 'a body parameter is merged into the JSON object');
is($body->{source}, 'test.key', 'the envelope is still the body');

# a body that is not an object: sent as it is
sql(q{SELECT eventbus.put_rule('plain', '{"source": ["test.plain"]}')});
sql(q{SELECT eventbus.put_target('plain', 'p', '} . $sink->url('/plain') . q{', connection => 'apikey',
	input_transformer => '{"InputPathsMap": {"s": "$.source"}, "InputTemplate": "source <s>"}')});
publish($node, 'test.plain', 1);
is($sink->wait_count('/plain', 1), 1, 'plain-text body: delivered');
($req) = @{ $sink->received('/plain') };
is($req->{body}, 'source test.plain', 'a body that is not a JSON object gets no body parameters');

# --- BASIC -----------------------------------------------------------------
put_connection(q{'basic', 'BASIC', '{"username": "alice", "password": "B-PASS-5"}'});
add_target($node, 'b', 'test.basic', 'b', $sink->url('/basic'), connection => 'basic');
publish($node, 'test.basic', 1);
is($sink->wait_count('/basic', 1), 1, 'BASIC: delivered');
($req) = @{ $sink->received('/basic') };
is($req->{headers}{authorization}, 'Basic ' . MIME::Base64::encode_base64('alice:B-PASS-5', ''),
	'BASIC: the Authorization header arrives');

# a dead letter of a connection's target holds none of its secrets
add_target($node, 'k400', 'test.k400', 'k400', $sink->url('/status/400'), connection => 'apikey');
publish($node, 'test.k400', 1);
ok(wait_until('a dead letter', sub { sql("SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'k400'") eq '1' }),
	'a refused request of a connection\'s target is dead-lettered');

# --- OAUTH_CLIENT_CREDENTIALS ------------------------------------------------
oauth_config('{"client_id": "client-1", "client_secret": "CS-SECRET-6", "expires_in": 3600}');
my $oauth_doc = '{"authorization_endpoint": "' . $oauth->url('/token') . '",
	"client_parameters": {"client_id": "client-1", "client_secret": "CS-SECRET-6"},
	"oauth_http_parameters": {"body_parameters": [{"key": "scope", "value": "events"}]}}';
put_connection("'oa', 'OAUTH_CLIENT_CREDENTIALS', '$oauth_doc'");
add_target($node, 'o', 'test.oauth', 'o', $oauth->url('/api/orders'), connection => 'oa',
	max_event_age => '60 seconds');
ok(wait_until('AUTHORIZED', sub { state_of('oa') eq 'AUTHORIZED' }), 'OAuth: AUTHORIZED once a token is fetched');
is(oauth_stats()->{issued}, 1, 'OAuth: one token fetched');
my $treq = oauth_stats()->{token_requests}[0];
is($treq->{headers}{authorization}, 'Basic ' . MIME::Base64::encode_base64('client-1:CS-SECRET-6', ''),
	'OAuth: the client authenticates with HTTP Basic');
is("$treq->{form}{grant_type} $treq->{form}{scope}", 'client_credentials events',
	'OAuth: grant_type and the body parameters are in the form');

is(sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'"),
	'2', 'two workers run');
publish($node, 'test.oauth', 20) for 1 .. 3;
is($oauth->wait_count('/api/orders', 60), 60, 'OAuth: 60 events delivered');
is(scalar(grep { $_->{status} == 200 } @{ $oauth->received('/api/orders') }), 60,
	'OAuth: every request carried a valid token');
is(oauth_stats()->{issued}, 1, 'OAuth: the token is fetched once and reused by both workers');

# expiry: a token that lives 4 s is refreshed before it expires
oauth_config('{"expires_in": 4}');
put_connection("'oa', 'OAUTH_CLIENT_CREDENTIALS', '$oauth_doc'");
ok(wait_until('the short token', sub { oauth_stats()->{issued} == 2 }), 'OAuth: put_connection fetches a new token');
my $t0 = time();
for (1 .. 6)
{
	publish($node, 'test.oauth', 1);
	usleep(1_000_000);
}
is($oauth->wait_count('/api/orders', 66), 66, 'OAuth: delivered across the token\'s expiry');
is(scalar(grep { $_->{status} != 200 } @{ $oauth->received('/api/orders') }), 0,
	'OAuth: no request went out with an expired token');
my $issued = oauth_stats()->{issued};
ok($issued >= 3 && $issued <= 5, "OAuth: refreshed before expiry ($issued tokens in all over about 6 s)");

# a 401 makes one refresh, however many requests got it
oauth_config('{"expires_in": 3600}');
put_connection("'oa', 'OAUTH_CLIENT_CREDENTIALS', '$oauth_doc'");
ok(wait_until('a long token', sub { state_of('oa') eq 'AUTHORIZED' && sql("SELECT token_expires_at > now() + interval '1 minute' FROM eventbus.connections WHERE name = 'oa'") eq 't' }),
	'OAuth: a long-lived token again');
$issued = oauth_stats()->{issued};
oauth_config('{"revoke_all": true}');
publish($node, 'test.oauth', 5);
ok(wait_until('the 5 events after the 401s', sub { scalar(grep { $_->{status} == 200 } @{ $oauth->received('/api/orders') }) == 71 }),
	'OAuth: after 401s, every event is delivered with a new token');
my $refused = scalar(grep { $_->{status} == 401 } @{ $oauth->received('/api/orders') });
ok($refused >= 1 && $refused <= 5, "OAuth: the target refused the revoked token ($refused requests)");
is(oauth_stats()->{issued}, $issued + 1, 'OAuth: one refresh for all the 401s of one token');

# the token endpoint fails: DEAUTHORIZED with the reason
oauth_config('{"fail": true, "revoke_all": true}');
publish($node, 'test.oauth', 3);
ok(wait_until('DEAUTHORIZED', sub { state_of('oa') eq 'DEAUTHORIZED' }, 20),
	'OAuth: a failing token endpoint deauthorizes the connection');
like(sql("SELECT state_reason FROM eventbus.connections WHERE name = 'oa'"),
	qr/failed 3 times in a row; last: the authorization endpoint answered HTTP 503/, 'the reason says why');
publish($node, 'test.oauth', 3);
my $attempts = sql("SELECT count(*) || ' ' || sum(attempts) FROM eventbus.deliveries WHERE target_id = 'o'");
my $sent = $oauth->count('/api/orders');
sleep 2;
is(sql("SELECT count(*) || ' ' || sum(attempts) FROM eventbus.deliveries WHERE target_id = 'o'"), $attempts,
	'DEAUTHORIZED: 6 deliveries wait and burn no attempts');
like($attempts, qr/^6 /, 'DEAUTHORIZED: all six wait');
is($oauth->count('/api/orders'), $sent, 'DEAUTHORIZED: no request goes out');

# fixed: put_connection authorizes anew and every queued delivery arrives once
oauth_config('{"fail": false}');
put_connection("'oa', 'OAUTH_CLIENT_CREDENTIALS', '$oauth_doc'");
ok(wait_until('the queue drained', sub { sql("SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'o'") eq '0' }),
	'authorized again: the queue drains');
my %ok_ids;
$ok_ids{ $_->{headers}{'webhook-id'} }++ for grep { $_->{status} == 200 } @{ $oauth->received('/api/orders') };
is(scalar(keys %ok_ids), 77, 'every event arrived');
is(scalar(grep { $_ > 1 } values %ok_ids), 0, 'each arrived once');
is(state_of('oa'), 'AUTHORIZED', 'AUTHORIZED again');

# max_event_age while deauthorized: dead-lettered, no attempt made
sql("SELECT eventbus.deauthorize_connection('oa')");
sql(q{
INSERT INTO eventbus.events (id, bus, source, detail_type, detail, "time", account, region, published_at)
VALUES (gen_random_uuid(), 'default', 'test.oauth', 'Old Event', '{"old": true}', now() - interval '10 minutes',
		'000000000000', 'local', now() - interval '10 minutes');
});
publish($node, 'test.oauth', 1);
ok(wait_until('the old event dead-lettered',
	sub { sql("SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'o'") eq '1' }),
	'DEAUTHORIZED: an event past max_event_age is dead-lettered');
is(sql("SELECT error_code || ' ' || exhausted_condition || ' ' || attempts || ' ' || (event->'detail'->>'old') FROM eventbus.dead_letters WHERE target_id = 'o'"),
	'NO_PERMISSIONS MaximumEventAgeInSeconds 0 true', 'with MaximumEventAgeInSeconds and no attempt');
like(sql("SELECT error_message FROM eventbus.dead_letters WHERE target_id = 'o'"),
	qr/connection "oa" is DEAUTHORIZED/, 'the message names the connection and its state');
is(sql("SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'o'"), '1',
	'a younger event keeps waiting');
is(sql("SELECT eventbus.connection_blocks('oa')"), 't', 'the connection blocks its target');

# --- no secret in the log or the dead letters -------------------------------
my $tokens = join('|', map { $_->{headers}{authorization} =~ s/^Bearer //r }
	  grep { ($_->{headers}{authorization} // '') =~ /^Bearer / } @{ $oauth->received('/api/orders') });
my $log = slurp_file($node->logfile);
like($log, qr/could not fetch an OAuth token for connection "oa"/, 'the log tells of the failed fetches');
for my $s (@secrets)
{
	unlike($log, qr/\Q$s\E/, "the server log does not hold $s");
}
unlike($log, qr/$tokens/, 'the server log holds no access token') if $tokens ne '';
my $dead = sql('SELECT string_agg(to_jsonb(d)::text, E\'\n\') FROM eventbus.dead_letters d');
for my $s (@secrets)
{
	unlike($dead, qr/\Q$s\E/, "the dead letters do not hold $s");
}

$sink->stop;
$oauth->stop;
done_testing();
