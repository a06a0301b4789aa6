/*-------------------------------------------------------------------------
 *
 * transform.c
 *	  Input transformation: what a target receives instead of the envelope.
 *
 * A target has at most one of: input (a constant JSON body), input_path (a
 * JSONPath into the envelope whose value is the body) or input_transformer
 * ({"InputPathsMap": {...}, "InputTemplate": "...", "MissingPath": ...}),
 * EventBridge's Input, InputPath and InputTransformer.  The paths are
 * EventBridge's subset of JSONPath: $, then .name and [index] steps.
 *
 * Where EventBridge trips its users, this code is stricter: a value put
 * inside a JSON string is escaped, and a template that is not JSON once
 * filled, a placeholder used as an object key or a variable no path
 * defines is an error when the target is saved.  The same scanner fills
 * the template at delivery and checks it at save time (with stand-in
 * values), so that the two can never disagree.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "envelope.h"
#include "settings.h"
#include "transform.h"

/* What a variable whose path is not in the event becomes. */
typedef enum MissingPolicy
{
	MISSING_EMPTY,				/* EventBridge's: empty text (null as a bare value) */
	MISSING_NULL,				/* a placeholder that is a whole string: null */
	MISSING_DEAD_LETTER			/* the delivery fails for good */
} MissingPolicy;

/* One step of a path: a key, or (key NULL) an array index. */
typedef struct PathStep
{
	const char *key;
	int			keylen;
	int			index;
} PathStep;

/* A parsed path. */
typedef struct Path
{
	const char *text;
	PathStep   *steps;
	int			nsteps;
} Path;

/* The variables EventBridge defines itself, in this order. */
enum
{
	RES_RULE_NAME,
	RES_RULE_ARN,
	RES_EVENT,
	RES_EVENT_JSON,
	RES_INGESTION_TIME,
	RES_COUNT
};

static const char *const reserved_names[RES_COUNT] = {
	"aws.events.rule-name",
	"aws.events.rule-arn",
	"aws.events.event",
	"aws.events.event.json",
	"aws.events.event.ingestion-time"
};

/* A checked input_transformer. */
typedef struct Transformer
{
	int			nvars;
	char	  **names;
	Path	   *paths;
	const char *template;
	int			template_len;
	bool		json;			/* the template is JSON (starts with { [ or ") */
	MissingPolicy missing;
} Transformer;

/* What the reserved variables are made of, for one delivery. */
typedef struct RenderContext
{
	Jsonb	   *envelope;		/* NULL: checking, stand-in values */
	const char *bus;
	const char *rule;
	const char *ingestion_time; /* "YYYY-MM-DDTHH:MM:SSZ" */
	Jsonb	   *event_without_detail;	/* made when first needed */
} RenderContext;

/* The largest body a transformation may make (a multiple of max_event_size). */
static int
output_limit(void)
{
	return eventbus_max_event_size * EB_TRANSFORM_OUTPUT_FACTOR;
}

/* Whether c may appear in a name step of a path. */
static bool
is_path_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-' || c == '/' ||
		c == ':' || c == '@';
}

/* Whether c may appear in a placeholder's (a variable's) name. */
static bool
is_var_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/*
 * Parses EventBridge's JSONPath subset: "$" then ".name" and "[n]" steps.
 * Returns NULL, or what is wrong (for errdetail).
 */
static const char *
parse_path(const char *text, Path *path)
{
	int			len = strlen(text);
	int			i = 1;

	path->text = text;
	path->steps = palloc(sizeof(PathStep) * (len + 1));
	path->nsteps = 0;
	if (len == 0 || text[0] != '$')
		return "A path starts with \"$\".";
	if (len > EB_TRANSFORM_MAX_PATH_LEN)
		return "A path is at most 256 characters.";
	while (i < len)
	{
		PathStep   *step = &path->steps[path->nsteps++];

		if (text[i] == '.')
		{
			int			start = ++i;

			if (i < len && text[i] == '.')
				return "Recursive descent (\"..\") is not supported.";
			while (i < len && is_path_name_char(text[i]))
				i++;
			if (i < len && text[i] == '*')
				return "Wildcards (\"*\") are not supported.";
			if (i == start)
				return "A \".\" is followed by a name of letters, digits, \"_\", \"-\", \"/\", \":\" or \"@\".";
			step->key = text + start;
			step->keylen = i - start;
		}
		else if (text[i] == '[')
		{
			int			start = ++i;
			int64		n = 0;

			while (i < len && text[i] >= '0' && text[i] <= '9' && i - start < 9)
				n = n * 10 + (text[i++] - '0');
			if (i < len && (text[i] == '\'' || text[i] == '"'))
				return "Bracket notation for names is not supported: use dot notation, for example $.detail.name.";
			if (i < len && text[i] == '*')
				return "Wildcards (\"*\") are not supported.";
			if (i == start || i >= len || text[i] != ']')
				return "An array index is a number of up to 9 digits in brackets, for example [0].";
			i++;
			step->key = NULL;
			step->index = (int) n;
		}
		else
			return "After \"$\" come only \".name\" and \"[index]\" steps.";
	}
	return NULL;
}

/* Finds the value at path in doc; false when the event has none there. */
static bool
eval_path(Jsonb *doc, const Path *path, JsonbValue *out)
{
	JsonbValue	cur;

	cur.type = jbvBinary;
	cur.val.binary.data = &doc->root;
	cur.val.binary.len = VARSIZE(doc) - VARHDRSZ;
	for (int i = 0; i < path->nsteps; i++)
	{
		const PathStep *step = &path->steps[i];
		JsonbContainer *c;
		JsonbValue *next;
		JsonbValue	tmp;

		if (cur.type != jbvBinary)
			return false;
		c = cur.val.binary.data;
		if (step->key != NULL)
		{
			if (!JsonContainerIsObject(c))
				return false;
			next = getKeyJsonValueFromContainer(c, step->key, step->keylen, &tmp);
		}
		else
		{
			if (!JsonContainerIsArray(c) || JsonContainerIsScalar(c))
				return false;
			next = getIthJsonbValueFromContainer(c, step->index);
		}
		if (next == NULL)
			return false;
		cur = *next;
	}
	*out = cur;
	return true;
}

/* Appends the JSON text of v. */
static void
append_value_json(StringInfo buf, JsonbValue *v)
{
	if (v->type == jbvBinary)
		(void) JsonbToCString(buf, v->val.binary.data, v->val.binary.len);
	else
	{
		Jsonb	   *j = JsonbValueToJsonb(v);

		(void) JsonbToCString(buf, &j->root, VARSIZE(j));
	}
}

/* Appends s as the inside of a JSON string (escaped, without quotes). */
static void
append_escaped(StringInfo buf, const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		switch (c)
		{
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			default:
				if (c < 0x20)
					appendStringInfo(buf, "\\u%04x", c);
				else
					appendStringInfoChar(buf, (char) c);
		}
	}
}

/* The envelope's string member key, or "". */
static const char *
envelope_string(Jsonb *env, const char *key)
{
	JsonbValue	tmp;
	JsonbValue *v = getKeyJsonValueFromContainer(&env->root, key, strlen(key), &tmp);

	if (v == NULL || v->type != jbvString)
		return "";
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * The value of variable `var` (an index into t's variables, or
 * t->nvars + a reserved one) into val: raw text when *is_string, else JSON
 * text.  False when its path is not in the event.
 */
static bool
variable_value(const Transformer *t, int var, RenderContext *ctx,
			   StringInfo val, bool *is_string)
{
	JsonbValue	v;

	*is_string = true;
	if (ctx->envelope == NULL)
	{
		appendStringInfoChar(val, 'x');
		return true;
	}
	if (var < t->nvars)
	{
		if (!eval_path(ctx->envelope, &t->paths[var], &v))
			return false;
		if (v.type == jbvString)
			appendBinaryStringInfo(val, v.val.string.val, v.val.string.len);
		else
		{
			*is_string = false;
			append_value_json(val, &v);
		}
		return true;
	}
	switch (var - t->nvars)
	{
		case RES_RULE_NAME:
			appendStringInfoString(val, ctx->rule);
			break;
		case RES_RULE_ARN:
			eb_rule_arn(val, envelope_string(ctx->envelope, "region"),
						envelope_string(ctx->envelope, "account"),
						ctx->bus, ctx->rule);
			break;
		case RES_INGESTION_TIME:
			appendStringInfoString(val, ctx->ingestion_time);
			break;
		case RES_EVENT:
			if (ctx->event_without_detail == NULL)
				ctx->event_without_detail =
					DatumGetJsonbP(DirectFunctionCall2(jsonb_delete,
													   JsonbPGetDatum(ctx->envelope),
													   CStringGetTextDatum("detail")));
			*is_string = false;
			(void) JsonbToCString(val, &ctx->event_without_detail->root,
								  VARSIZE(ctx->event_without_detail));
			break;
		case RES_EVENT_JSON:
			*is_string = false;
			(void) JsonbToCString(val, &ctx->envelope->root, VARSIZE(ctx->envelope));
			break;
	}
	return true;
}

/* The variable named name[0..len), or -1. */
static int
find_variable(const Transformer *t, const char *name, int len)
{
	for (int i = 0; i < t->nvars; i++)
		if ((int) strlen(t->names[i]) == len && memcmp(t->names[i], name, len) == 0)
			return i;
	for (int i = 0; i < RES_COUNT; i++)
		if ((int) strlen(reserved_names[i]) == len &&
			memcmp(reserved_names[i], name, len) == 0)
			return t->nvars + i;
	return -1;
}

/* The index just after the JSON string that contains position i. */
static int
string_end(const char *s, int len, int i)
{
	while (i < len && s[i] != '"')
		i += (s[i] == '\\') ? 2 : 1;
	return i < len ? i + 1 : len;
}

/* The first index from i that is not JSON whitespace. */
static int
skip_space(const char *s, int len, int i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/*
 * Fills t's template into out.  With ctx->envelope NULL it checks the
 * template instead (stand-in values; errors are ERRORs naming `what`).
 * Returns false with err set when the delivery must fail: a missing path
 * under MissingPath "dead-letter", or an output over the bound.
 */
static bool
render(const Transformer *t, RenderContext *ctx, const char *what,
	   StringInfo out, char *err, size_t errlen)
{
	const char *s = t->template;
	int			len = t->template_len;
	bool		in_string = false;
	int			string_open = -1;
	StringInfoData val;
	int			i = 0;

	initStringInfo(&val);
	while (i < len)
	{
		char		c = s[i];
		int			j;
		int			var;
		bool		is_string;
		bool		whole;
		int			after;

		if (t->json && in_string && c == '\\' && i + 1 < len)
		{
			appendBinaryStringInfo(out, s + i, 2);
			i += 2;
			continue;
		}
		if (t->json && c == '"')
		{
			in_string = !in_string;
			string_open = i;
			appendStringInfoChar(out, c);
			i++;
			continue;
		}
		j = i + 1;
		if (c == '<')
			while (j < len && j - i <= EB_TRANSFORM_MAX_NAME_LEN && is_var_name_char(s[j]))
				j++;
		if (c != '<' || j == i + 1 || j >= len || s[j] != '>')
		{
			appendStringInfoChar(out, c);
			i++;
			continue;
		}

		/* a placeholder <name> at s[i..j] */
		CHECK_FOR_INTERRUPTS();
		var = find_variable(t, s + i + 1, j - i - 1);
		after = j + 1;
		if (var < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid InputTemplate of %s", what),
					 errdetail("The placeholder <%.*s> names no variable of InputPathsMap.",
							   j - i - 1, s + i + 1),
					 errhint("Define it in InputPathsMap, for example \"%.*s\": \"$.detail.%.*s\", or use a reserved variable such as <aws.events.rule-name>.",
							 j - i - 1, s + i + 1, j - i - 1, s + i + 1)));
		if (t->json && ctx->envelope == NULL)
		{
			int			k = skip_space(s, len, in_string ? string_end(s, len, after) : after);

			if (k < len && s[k] == ':')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid InputTemplate of %s", what),
						 errdetail("The placeholder <%.*s> is used in an object key.",
								   j - i - 1, s + i + 1),
						 errhint("Keys are fixed text: put the placeholder in a value, for example {\"name\": <%.*s>}.",
								 j - i - 1, s + i + 1)));
		}
		whole = t->json && in_string && string_open == i - 1 && after < len &&
			s[after] == '"';

		resetStringInfo(&val);
		if (!variable_value(t, var, ctx, &val, &is_string))
		{
			if (t->missing == MISSING_DEAD_LETTER)
			{
				snprintf(err, errlen,
						 "input transformer: the path %s of variable %s is not in the event",
						 t->paths[var].text, t->names[var]);
				return false;
			}
			if (whole && t->missing == MISSING_NULL)
			{
				/* "<var>" becomes null: drop the quotes around it */
				out->len--;
				out->data[out->len] = '\0';
				appendStringInfoString(out, "null");
				in_string = false;
				i = after + 1;
				continue;
			}
			if (t->json && !in_string)
				appendStringInfoString(out, "null");
		}
		else if (t->json && in_string)
			append_escaped(out, val.data, val.len);
		else if (t->json && is_string)
			escape_json(out, val.data);
		else
			appendBinaryStringInfo(out, val.data, val.len);
		if (out->len > output_limit())
		{
			snprintf(err, errlen,
					 "input transformer: the output is over %d bytes (%d times eventbus.max_event_size)",
					 output_limit(), EB_TRANSFORM_OUTPUT_FACTOR);
			return false;
		}
		i = after;
	}

	if (t->json && ctx->envelope == NULL)
	{
		JsonLexContext *lex = makeJsonLexContextCstringLen(out->data, out->len,
														   GetDatabaseEncoding(),
														   true);
		JsonParseErrorType result = pg_parse_json(lex, &nullSemAction);

		if (result != JSON_SUCCESS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid InputTemplate of %s", what),
					 errdetail("It starts like JSON but is not JSON once its placeholders are filled: %s",
							   json_errdetail(result, lex)),
					 errhint("Write the template as JSON with placeholders as values or inside strings, for example {\"state\": <state>, \"text\": \"now <state>\"}; a template that does not start with {, [ or \" is sent as plain text.")));
	}
	return true;
}

/* Raises 22023 for the input_transformer of `what`. */
static void
transformer_error(const char *what, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid input_transformer of %s", what),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

/*
 * Reads and checks an input_transformer (EventBridge's limits, names,
 * paths, the template), raising 22023 naming `what`.
 */
static void
parse_transformer(Jsonb *spec, const char *what, Transformer *t)
{
	JsonbValue	tmp;
	JsonbValue *v;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	kv;
	const char *hint = "Give {\"InputPathsMap\": {\"state\": \"$.detail.state\"}, \"InputTemplate\": \"{\\\"state\\\": <state>}\"}, optionally with \"MissingPath\": \"empty\", \"null\" or \"dead-letter\".";

	memset(t, 0, sizeof(*t));
	if (!JB_ROOT_IS_OBJECT(spec))
		transformer_error(what, "It is not a JSON object.", hint);

	it = JsonbIteratorInit(&spec->root);
	while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		if (!((kv.val.string.len == 13 && memcmp(kv.val.string.val, "InputPathsMap", 13) == 0) ||
			  (kv.val.string.len == 13 && memcmp(kv.val.string.val, "InputTemplate", 13) == 0) ||
			  (kv.val.string.len == 11 && memcmp(kv.val.string.val, "MissingPath", 11) == 0)))
			transformer_error(what,
							  psprintf("It has the key \"%.*s\"; the keys are InputPathsMap, InputTemplate and MissingPath.",
									   kv.val.string.len, kv.val.string.val),
							  hint);
	}

	v = getKeyJsonValueFromContainer(&spec->root, "InputTemplate", 13, &tmp);
	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		transformer_error(what, "InputTemplate is missing, empty or not a string.", hint);
	t->template = pnstrdup(v->val.string.val, v->val.string.len);
	t->template_len = v->val.string.len;
	if (pg_mbstrlen_with_len(t->template, t->template_len) > EB_TRANSFORM_MAX_TEMPLATE)
		transformer_error(what,
						  psprintf("InputTemplate has %d characters.",
								   pg_mbstrlen_with_len(t->template, t->template_len)),
						  "An InputTemplate is at most 8192 characters.");
	{
		int			k = skip_space(t->template, t->template_len, 0);

		t->json = k < t->template_len &&
			(t->template[k] == '{' || t->template[k] == '[' || t->template[k] == '"');
	}

	t->missing = MISSING_EMPTY;
	v = getKeyJsonValueFromContainer(&spec->root, "MissingPath", 11, &tmp);
	if (v != NULL)
	{
		char	   *m = v->type == jbvString ? pnstrdup(v->val.string.val, v->val.string.len) : NULL;

		if (m != NULL && strcmp(m, "empty") == 0)
			t->missing = MISSING_EMPTY;
		else if (m != NULL && strcmp(m, "null") == 0)
			t->missing = MISSING_NULL;
		else if (m != NULL && strcmp(m, "dead-letter") == 0)
			t->missing = MISSING_DEAD_LETTER;
		else
			transformer_error(what,
							  psprintf("MissingPath is %s.", m ? m : "not a string"),
							  "MissingPath is \"empty\" (EventBridge's way, the default), \"null\" or \"dead-letter\".");
	}

	v = getKeyJsonValueFromContainer(&spec->root, "InputPathsMap", 13, &tmp);
	if (v != NULL)
	{
		int			n;

		if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			transformer_error(what, "InputPathsMap is not a JSON object.", hint);
		n = JsonContainerSize(v->val.binary.data);
		if (n > EB_TRANSFORM_MAX_PATHS)
			transformer_error(what, psprintf("InputPathsMap has %d variables.", n),
							  "InputPathsMap has at most 100 variables.");
		t->names = palloc(sizeof(char *) * (n + 1));
		t->paths = palloc(sizeof(Path) * (n + 1));
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				char	   *name = pnstrdup(kv.val.string.val, kv.val.string.len);
				bool		ok = kv.val.string.len > 0 &&
					kv.val.string.len <= EB_TRANSFORM_MAX_NAME_LEN;

				for (int i = 0; ok && i < kv.val.string.len; i++)
					ok = is_var_name_char(name[i]);
				if (!ok)
					transformer_error(what,
									  psprintf("The variable name \"%s\" is not 1 to 256 letters, digits, \"_\", \"-\" or \".\".", name),
									  "Name variables like \"instance\" or \"order-id\".");
				if (pg_strncasecmp(name, "aws.", 4) == 0)
					transformer_error(what,
									  psprintf("The variable name \"%s\" starts with \"aws.\".", name),
									  "Names starting with \"aws.\" are reserved; the reserved variables are used without a path, for example <aws.events.rule-name>.");
				t->names[t->nvars] = name;
			}
			else if (tok == WJB_VALUE)
			{
				const char *problem;

				if (kv.type != jbvString)
					transformer_error(what,
									  psprintf("The path of variable \"%s\" is not a string.",
											   t->names[t->nvars]),
									  "Give each variable a JSONPath string, for example \"$.detail.state\".");
				problem = parse_path(pnstrdup(kv.val.string.val, kv.val.string.len),
									 &t->paths[t->nvars]);
				if (problem != NULL)
					transformer_error(what,
									  psprintf("The path \"%s\" of variable \"%s\" is not supported: %s",
											   t->paths[t->nvars].text,
											   t->names[t->nvars], problem),
									  "Paths are $ followed by .name and [index] steps, for example \"$.detail.items[0].sku\".");
				t->nvars++;
			}
		}
	}
}

/* Checks t's template, raising 22023 for what is wrong with it. */
static void
check_template(const Transformer *t, const char *what)
{
	RenderContext ctx = {0};
	StringInfoData out;
	char		err[8];

	ctx.bus = ctx.rule = ctx.ingestion_time = "";
	initStringInfo(&out);
	(void) render(t, &ctx, what, &out, err, sizeof(err));
	pfree(out.data);
}

/* Checks an input_path, raising 22023 naming `what`. */
static void
check_input_path(const char *path_text, const char *what, Path *path)
{
	const char *problem = parse_path(path_text, path);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid input_path of %s", what),
				 errdetail("The path \"%s\" is not supported: %s", path_text, problem),
				 errhint("Give $ followed by .name and [index] steps, for example '$.detail'.")));
}

/*
 * The body a target with the transformation `spec` (the claim's jsonb:
 * {"input": ..., "input_path": ..., "input_transformer": ...}, the unset
 * ones null) receives for the envelope envelope_text, which it frees.
 * Returns NULL with err set when the delivery must fail for good.
 */
char *
eb_transform_delivery(Datum spec_datum, char *envelope_text, const char *bus,
					  const char *rule, TimestampTz published_at, int *len,
					  bool *plain_text, char *err, size_t errlen)
{
	Jsonb	   *spec = DatumGetJsonbP(spec_datum);
	Jsonb	   *env = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(envelope_text)));
	JsonbValue	tmp;
	JsonbValue *v;
	StringInfoData out;
	char		what[200];
	char		ingestion_time[EB_TIME_TEXT_LEN];

	pfree(envelope_text);
	*plain_text = false;
	initStringInfo(&out);
	snprintf(what, sizeof(what), "target of rule \"%s\" on bus \"%s\"", rule, bus);

	if ((v = getKeyJsonValueFromContainer(&spec->root, "input", 5, &tmp)) != NULL &&
		v->type != jbvNull)
		append_value_json(&out, v);
	else if ((v = getKeyJsonValueFromContainer(&spec->root, "input_path", 10, &tmp)) != NULL &&
			 v->type == jbvString)
	{
		Path		path;
		JsonbValue	value;

		check_input_path(pnstrdup(v->val.string.val, v->val.string.len), what, &path);
		if (eval_path(env, &path, &value))
			append_value_json(&out, &value);
		else
			appendStringInfoString(&out, "null");
	}
	else if ((v = getKeyJsonValueFromContainer(&spec->root, "input_transformer", 17, &tmp)) != NULL &&
			 v->type == jbvBinary)
	{
		Transformer t;
		RenderContext ctx = {0};

		parse_transformer(JsonbValueToJsonb(v), what, &t);
		if (!eb_envelope_time_text(published_at, ingestion_time))
			ingestion_time[0] = '\0';
		ctx.envelope = env;
		ctx.bus = bus;
		ctx.rule = rule;
		ctx.ingestion_time = ingestion_time;
		if (!render(&t, &ctx, what, &out, err, errlen))
			return NULL;
		*plain_text = !t.json;
	}
	else
		(void) JsonbToCString(&out, &env->root, VARSIZE(env));

	if (out.len > output_limit())
	{
		snprintf(err, errlen,
				 "input transformation: the output is over %d bytes (%d times eventbus.max_event_size)",
				 output_limit(), EB_TRANSFORM_OUTPUT_FACTOR);
		return NULL;
	}
	*len = out.len;
	return out.data;
}

/*
 * put_target's check of a target's transformation: at most one of input,
 * input_path and input_transformer, each valid, the template filled with
 * stand-ins JSON when it looks like JSON.  Raises 22023.
 */
PG_FUNCTION_INFO_V1(eventbus_check_target_input);
Datum
eventbus_check_target_input(PG_FUNCTION_ARGS)
{
	char	   *target_id = PG_ARGISNULL(0) ? pstrdup("") : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *what = psprintf("target \"%s\"", target_id);
	int			given = (!PG_ARGISNULL(1)) + (!PG_ARGISNULL(2)) + (!PG_ARGISNULL(3));

	if (given > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target \"%s\" has more than one of input, input_path and input_transformer",
						target_id),
				 errdetail("%d of them are given.", given),
				 errhint("Give one: input (a constant body), input_path (a part of the event) or input_transformer (a template).")));
	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *input = PG_GETARG_JSONB_P(1);

		if (JB_ROOT_IS_SCALAR(input))
		{
			JsonbValue	v;

			if (JsonbExtractScalar(&input->root, &v) && v.type == jbvNull)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid input of %s", what),
						 errdetail("The input is the JSON null."),
						 errhint("Give input => NULL (SQL NULL) to send the event, or a JSON value to send instead.")));
		}
	}
	if (!PG_ARGISNULL(2))
	{
		Path		path;

		check_input_path(text_to_cstring(PG_GETARG_TEXT_PP(2)), what, &path);
	}
	if (!PG_ARGISNULL(3))
	{
		Transformer t;

		parse_transformer(PG_GETARG_JSONB_P(3), what, &t);
		check_template(&t, what);
	}
	PG_RETURN_VOID();
}

/*
 * eventbus.test_transform(event, input_transformer, rule, bus): the text a
 * target with this transformer would receive for this event, as the
 * console's sandbox shows it.  ingestion-time is the event's "time".
 */
PG_FUNCTION_INFO_V1(eventbus_test_transform);
Datum
eventbus_test_transform(PG_FUNCTION_ARGS)
{
	Jsonb	   *event;
	Transformer t;
	RenderContext ctx = {0};
	StringInfoData out;
	char		err[256];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	event = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_OBJECT(event))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event for test_transform"),
				 errdetail("The event is not a JSON object."),
				 errhint("Give an event envelope such as eventbus.envelope() returns.")));
	parse_transformer(PG_GETARG_JSONB_P(1), "the test", &t);
	check_template(&t, "the test");

	ctx.envelope = event;
	ctx.rule = PG_ARGISNULL(2) ? "test-rule" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	ctx.bus = PG_ARGISNULL(3) ? "default" : text_to_cstring(PG_GETARG_TEXT_PP(3));
	ctx.ingestion_time = envelope_string(event, "time");
	initStringInfo(&out);
	if (!render(&t, &ctx, "the test", &out, err, sizeof(err)))
		ereport(ERROR,
				(errcode(out.len > output_limit() ? ERRCODE_PROGRAM_LIMIT_EXCEEDED :
						 ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the delivery would fail and go to the dead letters"),
				 errdetail("%s", err),
				 errhint("Check the paths against the event, or set \"MissingPath\" to \"empty\" or \"null\".")));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
