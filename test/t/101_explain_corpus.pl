# Runs every case of the EventBridge conformance corpus that has a valid
# pattern and an event through eventbus.explain_match, in one statement:
# its verdict must be test_event_pattern's (and the corpus's, but for the
# SQL differences 100_conformance_sql.pl lists), and every non-match must
# come with a field, an operator, the expected value and a reason.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $dir = $ENV{EVENTBUS_CONFORMANCE_DIR}
  // dirname(abs_path(__FILE__)) . '/../../../shared/conformance';
my $corpus = "$dir/patterns.jsonl";
plan skip_all => "no conformance corpus at $corpus" unless -r $corpus;

# The one case with a valid jsonb pattern whose SQL verdict differs from
# the corpus (see 100_conformance_sql.pl and the README).
my %sql_differs =
  ('er-JsonRuleCompilerTest-testWithRuleOverride-ebd8bd0f' => 'f');

my $node = PostgreSQL::Test::Cluster->new('explain_corpus');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventbus');

# Load the corpus lines verbatim, then keep the cases with a valid pattern
# and an event object, both as jsonb.
$node->safe_psql('postgres', qq{
	CREATE TABLE lines (n serial, line text);
	COPY lines (line) FROM '$corpus' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
	CREATE FUNCTION doc(c jsonb, k text) RETURNS jsonb LANGUAGE plpgsql AS \$\$
	BEGIN
		RETURN coalesce(nullif(c -> k, 'null'), (c ->> (k || '_text'))::jsonb);
	EXCEPTION WHEN others THEN
		RETURN NULL;
	END \$\$;
	CREATE FUNCTION valid(pattern jsonb) RETURNS boolean LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM eventbus.validate_event_pattern(pattern);
		RETURN true;
	EXCEPTION WHEN others THEN
		RETURN false;
	END \$\$;
	CREATE TABLE cases AS
		SELECT n, c ->> 'id' AS id, (c ->> 'match')::boolean AS want,
			   doc(c, 'pattern') AS pattern, doc(c, 'event') AS event
		FROM (SELECT n, line::jsonb AS c FROM lines) l
		WHERE c ? 'match';
	DELETE FROM cases
	WHERE pattern IS NULL OR event IS NULL OR jsonb_typeof(event) <> 'object'
		OR NOT valid(pattern);
});

my $t0 = time;
my $out = $node->safe_psql('postgres', q{
	SELECT c.id, x.matched, eventbus.test_event_pattern(c.pattern, c.event),
		   c.want,
		   x.matched OR (coalesce(x.field, '') <> '' AND x.operator IS NOT NULL
						 AND x.expected IS NOT NULL AND coalesce(x.reason, '') <> ''),
		   coalesce(x.reason, '')
	FROM cases c, LATERAL eventbus.explain_match(c.pattern, c.event) x
	ORDER BY c.n});
my $seconds = time - $t0;

my @rows = split /\n/, $out;
cmp_ok(scalar(@rows), '>=', 1000,
	'the corpus has its cases (' . scalar(@rows) . ')');
note sprintf('explain_match and test_event_pattern on %d cases: %.2f s',
	scalar(@rows), $seconds);

my ($disagree, $wrong, $no_reason, $nonmatch) = (0, 0, 0, 0);
foreach my $row (@rows)
{
	my ($id, $matched, $tested, $want, $explained, $reason) =
	  split /\|/, $row, 6;
	$want = $sql_differs{$id} if exists $sql_differs{$id};
	$nonmatch++ if $matched eq 'f';
	if ($matched ne $tested)
	{
		$disagree++;
		diag "$id: explain_match says $matched, test_event_pattern $tested";
	}
	if ($matched ne $want)
	{
		$wrong++;
		diag "$id: explain_match says $matched, the corpus $want";
	}
	if ($explained ne 't')
	{
		$no_reason++;
		diag "$id: a non-match without field, operator, expected value or reason";
	}
}
is($disagree, 0, 'explain_match agrees with test_event_pattern on every case');
is($wrong, 0, 'explain_match agrees with the corpus on every case');
is($no_reason, 0,
	"every non-match ($nonmatch) names a field, an operator, the expected value and a reason");

$node->stop;
done_testing();
