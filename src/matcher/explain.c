/*-------------------------------------------------------------------------
 *
 * explain.c
 *	  Why an event does not match a pattern (ebm_explain).
 *
 * The verdict is the matcher's: ebm_explain() compiles the pattern alone
 * into a rule set and runs ebm_match(), so it cannot disagree with
 * publishing.  Only for a non-match does it look further, with the same
 * decision procedure the matcher uses (ebm_subrule_holds, eval.c) applied
 * to parts of each $or alternative (a sub-rule):
 *
 *	1. each field alone, in the sub-rule's order: the first that fails
 *	   alone is the answer (a missing field, a value the operator refuses,
 *	   a field that exists:false wants absent);
 *	2. if every field holds alone, the shortest prefix of fields that
 *	   fails together: its last field is the answer, and of the fields
 *	   before it that fail in a pair with it, the one sharing the longest
 *	   path with it names the array whose elements could not keep the
 *	   fields together.
 *
 * The fields are taken in the order eval.c decides them: those that need
 * a value first, those with exists:false after them (an exists:false field
 * that fails only through the array elements chosen for the others is
 * found by step 2, not step 1).
 *
 * With several alternatives the one that came closest is reported: the
 * most fields holding alone, then the longest prefix holding together,
 * then the first.
 *
 * Bounds: each decision is one ebm_subrule_holds() call on the flattened
 * event, at most three per field of the pattern, each linear in the values
 * it reads; the interrupt callback is asked as in a match, and the
 * context's scratch space is trimmed at the end.  The texts are built in
 * growing buffers; they hold the pattern's literals and at most
 * EBM_EXPLAIN_MAX_VALUES of the event's values.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebm_internal.h"
#include "ebm_explain.h"
#include "ruleset.h"

/* A growing text buffer; nomem sticks once an allocation failed. */
typedef struct xbuf
{
	char	   *s;
	size_t		len;
	size_t		cap;
	bool		nomem;
} xbuf;

/* Append n bytes to the buffer. */
static void
xb_add(xbuf *b, const char *s, size_t n)
{
	if (b->nomem)
		return;
	if (!ebm_reserve((void **) &b->s, &b->cap, b->len + n + 1, 1))
	{
		b->nomem = true;
		return;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* Append a NUL-terminated string. */
static void
xb_str(xbuf *b, const char *s)
{
	xb_add(b, s, strlen(s));
}

/* Append a string as a JSON string literal. */
static void
xb_json_string(xbuf *b, const char *s, size_t n)
{
	size_t		i,
				run = 0;

	xb_add(b, "\"", 1);
	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		xb_add(b, s + run, i - run);
		run = i + 1;
		if (c == '"')
			xb_add(b, "\\\"", 2);
		else if (c == '\\')
			xb_add(b, "\\\\", 2);
		else
		{
			char		esc[8];

			snprintf(esc, sizeof(esc), "\\u%04x", c);
			xb_str(b, esc);
		}
	}
	xb_add(b, s + run, n - run);
	xb_add(b, "\"", 1);
}

/* Append a JSON value given by its type and text (a leaf or a literal). */
static void
xb_value(xbuf *b, uint8_t vtype, const char *s, size_t n)
{
	switch (vtype)
	{
		case EBM_V_STRING:
			xb_json_string(b, s, n);
			break;
		case EBM_V_NUMBER:
			xb_add(b, s, n);
			break;
		case EBM_V_TRUE:
			xb_str(b, "true");
			break;
		case EBM_V_FALSE:
			xb_str(b, "false");
			break;
		default:
			xb_str(b, "null");
			break;
	}
}

/* Append a double in its shortest form that reads back the same. */
static void
xb_double(xbuf *b, double v)
{
	char		num[40];
	int			prec;

	if (v > -1e15 && v < 1e15 && v == (double) (int64_t) v)
	{
		snprintf(num, sizeof(num), "%lld", (long long) v);
		xb_str(b, num);
		return;
	}
	for (prec = 1; prec <= 17; prec++)
	{
		snprintf(num, sizeof(num), "%.*g", prec, v);
		if (strtod(num, NULL) == v)
			break;
	}
	xb_str(b, num);
}

/* The operator's name of a condition, as the pattern spells it. */
static const char *
cond_op(const ebm_cond *c)
{
	switch (c->kind)
	{
		case EBM_C_EXACT:
			return "equals";
		case EBM_C_PREFIX:
			return "prefix";
		case EBM_C_SUFFIX:
			return "suffix";
		case EBM_C_EQUALS_IC:
			return "equals-ignore-case";
		case EBM_C_WILDCARD:
			return "wildcard";
		case EBM_C_NUMERIC:
			return "numeric";
		case EBM_C_EXISTS:
			return "exists";
		case EBM_C_CIDR:
			return "cidr";
		default:
			return "anything-but";
	}
}

/* Append the literals of a condition: one as itself, several as an array. */
static void
xb_lits(xbuf *b, const ebm_cond *c)
{
	uint32_t	i;

	if (c->nlits == 1)
	{
		xb_value(b, c->lits[0].vtype, c->lits[0].str, c->lits[0].len);
		return;
	}
	xb_str(b, "[");
	for (i = 0; i < c->nlits; i++)
	{
		if (i > 0)
			xb_str(b, ", ");
		xb_value(b, c->lits[i].vtype, c->lits[i].str, c->lits[i].len);
	}
	xb_str(b, "]");
}

/* Append a CIDR block as text: dotted quad, or eight hex groups. */
static void
xb_cidr(xbuf *b, const ebm_cidr *c)
{
	char		t[64];
	size_t		n = 0;
	int			i;

	if (c->family == 4)
		n = (size_t) snprintf(t, sizeof(t), "%u.%u.%u.%u", c->addr[0], c->addr[1],
							  c->addr[2], c->addr[3]);
	else
		for (i = 0; i < 16; i += 2)
			n += (size_t) snprintf(t + n, sizeof(t) - n, "%s%x", i ? ":" : "",
								   (unsigned) (c->addr[i] << 8 | c->addr[i + 1]));
	snprintf(t + n, sizeof(t) - n, "/%u", c->bits);
	xb_json_string(b, t, strlen(t));
}

/*
 * Append the argument of a condition's operator as JSON: what follows the
 * operator's name in the pattern (for an exact value, the value).  Strings
 * of equals-ignore-case forms appear case-folded, as the matcher keeps them.
 */
static void
xb_cond_arg(xbuf *b, const ebm_cond *c)
{
	static const char *const abforms[] = {"", "prefix", "suffix",
	"equals-ignore-case", "wildcard"};

	switch (c->kind)
	{
		case EBM_C_NUMERIC:
			xb_str(b, "[");
			if (c->has_lo && c->has_hi && c->lo_incl && c->hi_incl && c->lo == c->hi)
			{
				xb_str(b, "\"=\", ");
				xb_double(b, c->lo);
			}
			else
			{
				if (c->has_lo)
				{
					xb_str(b, c->lo_incl ? "\">=\", " : "\">\", ");
					xb_double(b, c->lo);
				}
				if (c->has_hi)
				{
					xb_str(b, c->has_lo ? ", " : "");
					xb_str(b, c->hi_incl ? "\"<=\", " : "\"<\", ");
					xb_double(b, c->hi);
				}
			}
			xb_str(b, "]");
			break;
		case EBM_C_EXISTS:
			xb_str(b, c->exists ? "true" : "false");
			break;
		case EBM_C_CIDR:
			xb_cidr(b, &c->cidr);
			break;
		case EBM_C_PREFIX:
		case EBM_C_SUFFIX:
			if (c->icase)
			{
				xb_str(b, "{\"equals-ignore-case\": ");
				xb_lits(b, c);
				xb_str(b, "}");
			}
			else
				xb_lits(b, c);
			break;
		case EBM_C_ANYTHING_BUT:
			if (c->abkind != EBM_AB_VALUES && c->abkind <= EBM_AB_WILDCARD)
			{
				xb_str(b, "{\"");
				xb_str(b, abforms[c->abkind]);
				xb_str(b, "\": ");
				xb_lits(b, c);
				xb_str(b, "}");
			}
			else
				xb_lits(b, c);
			break;
		default:
			xb_lits(b, c);
			break;
	}
}

/* Append a condition as it stands in a match list. */
static void
xb_cond_form(xbuf *b, const ebm_cond *c)
{
	if (c->kind == EBM_C_EXACT)
	{
		xb_cond_arg(b, c);
		return;
	}
	xb_str(b, "{\"");
	xb_str(b, cond_op(c));
	xb_str(b, "\": ");
	xb_cond_arg(b, c);
	xb_str(b, "}");
}

/* The operator column of a field: the one operator, or "any of". */
static const char *
field_op(const ebm_field *f)
{
	uint32_t	i;

	for (i = 1; i < f->ncond; i++)
		if (f->conds[i].kind != f->conds[0].kind)
			return "any of";
	return cond_op(&f->conds[0]);
}

/*
 * Append the expected column of a field: one condition's argument, exact
 * values as an array of them, otherwise the whole match list.
 */
static void
xb_field_expected(xbuf *b, const ebm_field *f)
{
	uint32_t	i;
	bool		all_exact = true;

	if (f->ncond == 1)
	{
		xb_cond_arg(b, &f->conds[0]);
		return;
	}
	for (i = 0; i < f->ncond; i++)
		if (f->conds[i].kind != EBM_C_EXACT)
			all_exact = false;
	xb_str(b, "[");
	for (i = 0; i < f->ncond; i++)
	{
		if (i > 0)
			xb_str(b, ", ");
		if (all_exact)
			xb_cond_arg(b, &f->conds[i]);
		else
			xb_cond_form(b, &f->conds[i]);
	}
	xb_str(b, "]");
}

/* Is the field's whole match list [{"exists": false}]? */
static bool
only_absent(const ebm_field *f)
{
	return f->ncond == 1 && f->conds[0].kind == EBM_C_EXISTS &&
		!f->conds[0].exists;
}

/*
 * Append a field in words, its path shown from after the first skip bytes
 * (the enclosing array's path and its dot): 'sku equals "X"', 'discount
 * missing'.
 */
static void
xb_field_words(xbuf *b, const ebm_field *f, size_t skip)
{
	xb_add(b, f->path + skip, f->pathlen - skip);
	if (only_absent(f))
	{
		xb_str(b, " missing");
		return;
	}
	xb_str(b, " ");
	xb_str(b, field_op(f));
	xb_str(b, " ");
	xb_field_expected(b, f);
}

/* The event's values at a path (count in *n), as match.c reads them. */
static const ebm_leaf *
values_at(const ebm_match_ctx *ctx, uint32_t p, uint32_t *n)
{
	if (p >= ctx->npathcap || ctx->pgen[p] != ctx->gen)
	{
		*n = 0;
		return NULL;
	}
	*n = ctx->pcount[p];
	return ctx->byp + ctx->pfirst[p];
}

/*
 * Append the event's values at a field's path: the value, or an array of
 * the first EBM_EXPLAIN_MAX_VALUES.  Returns how many values there are.
 */
static uint32_t
xb_actual(xbuf *b, const ebm_field *f, const ebm_match_ctx *ctx)
{
	uint32_t	n;
	uint32_t	i;
	const ebm_leaf *v = values_at(ctx, f->path_id, &n);

	if (n == 1)
		xb_value(b, v[0].vtype, v[0].str, v[0].len);
	else if (n > 1)
	{
		xb_str(b, "[");
		for (i = 0; i < n && i < EBM_EXPLAIN_MAX_VALUES; i++)
		{
			if (i > 0)
				xb_str(b, ", ");
			xb_value(b, v[i].vtype, v[i].str, v[i].len);
		}
		xb_str(b, "]");
	}
	return n;
}

/* One decision: do fields [from, from + n) of s hold together? */
static bool
part_holds(const ebm_subrule *s, uint32_t from, uint32_t n,
		   ebm_match_ctx *ctx)
{
	ebm_subrule part;

	part.nfields = n;
	part.rank = s->rank;
	part.fields = s->fields + from;
	ebm_tick(ctx, 1);
	return ebm_subrule_holds(&part, ctx);
}

/*
 * Does an exists:false field fail whatever array elements are chosen for
 * the others?  It does when one of its values sits outside every array.
 */
static bool
absent_fails_everywhere(const ebm_field *f, const ebm_match_ctx *ctx)
{
	uint32_t	n,
				i;
	const ebm_leaf *v = values_at(ctx, f->path_id, &n);

	for (i = 0; i < n; i++)
		if (v[i].ntrail == 0)
			return true;
	return false;
}

/* Where one alternative fails: its field and how. */
typedef struct failure
{
	uint32_t	field;			/* index of the field reported, in order */
	uint32_t	alone;			/* fields that hold alone */
	uint32_t	together;		/* longest prefix holding together */
	bool		combination;	/* every field holds alone */
	bool		holds;			/* the whole alternative holds */
} failure;

/*
 * Put the fields of s into *sorted in the order the decisions use: the
 * fields that need a value first, those that may hold by absence after
 * them, as eval.c decides them.
 */
static void
order_fields(const ebm_subrule *s, ebm_subrule *sorted)
{
	uint32_t	i,
				n = 0;

	for (i = 0; i < s->nfields; i++)
		if (!s->fields[i].absent_ok)
			sorted->fields[n++] = s->fields[i];
	for (i = 0; i < s->nfields; i++)
		if (s->fields[i].absent_ok)
			sorted->fields[n++] = s->fields[i];
	sorted->nfields = n;
	sorted->rank = s->rank;
}

/*
 * Decide where the sub-rule s (its fields ordered by order_fields) fails.
 * A field that may hold by absence and fails only through the array
 * elements chosen for the others counts as holding alone: the prefix step
 * finds it.
 */
static void
find_failure(const ebm_subrule *s, ebm_match_ctx *ctx, failure *fl)
{
	uint32_t	i,
				n = s->nfields;
	bool		found = false;

	memset(fl, 0, sizeof(*fl));
	for (i = 0; i < n; i++)
	{
		const ebm_field *f = &s->fields[i];

		if (part_holds(s, i, 1, ctx) ||
			(f->absent_ok && !absent_fails_everywhere(f, ctx)))
			fl->alone++;
		else if (!found)
		{
			fl->field = i;
			found = true;
		}
	}
	if (found)
		return;
	fl->combination = true;
	for (i = 1; i <= n; i++)
	{
		if (!part_holds(s, 0, i, ctx))
		{
			fl->field = i - 1;
			fl->together = i - 1;
			return;
		}
	}
	/* the matcher's index said no, but the alternative holds: say so */
	fl->holds = true;
	fl->together = n;
}

/* Is failure a closer to a match than failure b? */
static bool
closer(const failure *a, const failure *b)
{
	if (a->holds != b->holds)
		return a->holds;
	if (a->alone != b->alone)
		return a->alone > b->alone;
	return a->together > b->together;
}

/*
 * Length of the dotted path both fields start with (whole segments), for
 * "no element of <that path> has ...".
 */
static size_t
common_path(const ebm_field *a, const ebm_field *b)
{
	size_t		n = a->pathlen < b->pathlen ? a->pathlen : b->pathlen;
	size_t		i,
				last = 0;

	for (i = 0; i < n && a->path[i] == b->path[i]; i++)
		if (a->path[i] == '.')
			last = i;
	if (i == n && (a->pathlen == n || a->path[n] == '.') &&
		(b->pathlen == n || b->path[n] == '.'))
		last = n;
	return last;
}

/* Write the reason for a field that fails alone. */
static void
reason_alone(xbuf *r, const ebm_field *f, const ebm_match_ctx *ctx)
{
	uint32_t	n,
				i;
	const ebm_leaf *v = values_at(ctx, f->path_id, &n);
	bool		ab = (f->ncond == 1 && f->conds[0].kind == EBM_C_ANYTHING_BUT);

	if (n == 0)
	{
		xb_str(r, "field is missing");
		return;
	}
	if (only_absent(f))
	{
		xb_str(r, "field is present, and exists: false wants it absent");
		return;
	}
	if (n == 1)
	{
		xb_str(r, "value ");
		xb_value(r, v[0].vtype, v[0].str, v[0].len);
		xb_str(r, ab ? " is excluded by " : " does not match ");
	}
	else
	{
		char		num[32];

		snprintf(num, sizeof(num), "%u", n);
		xb_str(r, "none of its ");
		xb_str(r, num);
		xb_str(r, " values (");
		for (i = 0; i < n && i < EBM_EXPLAIN_MAX_VALUES; i++)
		{
			if (i > 0)
				xb_str(r, ", ");
			xb_value(r, v[i].vtype, v[i].str, v[i].len);
		}
		xb_str(r, i < n ? ", ...) " : ") ");
		xb_str(r, ab ? "escapes " : "matches ");
	}
	xb_str(r, field_op(f));
	xb_str(r, " ");
	xb_field_expected(r, f);
}

/*
 * Write the reason for field k of s, which holds alone but not together
 * with the fields before it: find the field it fails with in a pair.
 */
static void
reason_together(xbuf *r, const ebm_subrule *s, uint32_t k,
				ebm_match_ctx *ctx)
{
	const ebm_field *fk = &s->fields[k];
	const ebm_field *fj = NULL;
	uint32_t	j;
	size_t		skip;

	/* of the fields it fails with in a pair, the nearest in the event */
	for (j = 0; j < k; j++)
	{
		ebm_subrule pair;
		ebm_field	two[2];

		if (fj != NULL && common_path(&s->fields[j], fk) <= common_path(fj, fk))
			continue;
		two[0] = s->fields[j];
		two[1] = *fk;
		pair.nfields = 2;
		pair.rank = s->rank;
		pair.fields = two;
		ebm_tick(ctx, 1);
		if (!ebm_subrule_holds(&pair, ctx))
			fj = &s->fields[j];
	}
	if (fj == NULL && !part_holds(s, k, 1, ctx))
	{
		/* an exists:false field that no choice of elements avoids */
		reason_alone(r, fk, ctx);
		return;
	}
	if (fj == NULL)
	{
		xb_str(r, "each field matches alone, but ");
		xb_add(r, fk->path, fk->pathlen);
		xb_str(r, " does not match together with the fields before it in one element of their arrays");
		return;
	}
	skip = common_path(fj, fk);
	if (skip == 0)
	{
		xb_field_words(r, fj, 0);
		xb_str(r, " and ");
		xb_field_words(r, fk, 0);
		xb_str(r, " each match alone, but not at the same place in the event");
		return;
	}
	xb_str(r, "no element of ");
	xb_add(r, fk->path, skip);
	xb_str(r, " has ");
	xb_field_words(r, fj, skip < fj->pathlen ? skip + 1 : 0);
	xb_str(r, " together with ");
	xb_field_words(r, fk, skip < fk->pathlen ? skip + 1 : 0);
	xb_str(r, " (fields taken from one array element must come from the same element)");
}

/* Take a buffer's text (an empty string for an empty buffer). */
static char *
xb_take(xbuf *b)
{
	if (b->s == NULL && !b->nomem)
		xb_add(b, "", 0);
	return b->s;
}

/* Fill the explanation of a non-match from the closest alternative. */
static bool
explain_failure(const ebm_ruleset *rs, ebm_match_ctx *ctx,
				ebm_explanation *e)
{
	failure		best,
				fl;
	uint32_t	bi = 0,
				i;
	ebm_subrule sorted;
	const ebm_field *f;
	xbuf		field = {0},
				expected = {0},
				actual = {0},
				reason = {0};

	memset(&best, 0, sizeof(best));
	sorted.fields = ebm_calloc(rs->maxfields + 1, sizeof(ebm_field));
	if (sorted.fields == NULL)
		return false;
	for (i = 0; i < rs->nsubs; i++)
	{
		order_fields(&rs->subs[i], &sorted);
		find_failure(&sorted, ctx, &fl);
		if (ctx->interrupted || ctx->over_budget)
		{
			ebm_free(sorted.fields);
			return true;
		}
		if (i == 0 || closer(&fl, &best))
		{
			best = fl;
			bi = i;
		}
	}
	e->alternative = bi + 1;
	e->nalternatives = rs->nsubs;
	if (rs->nsubs == 0)
	{
		ebm_free(sorted.fields);
		return true;
	}
	order_fields(&rs->subs[bi], &sorted);
	f = &sorted.fields[best.field];

	xb_add(&field, f->path, f->pathlen);
	xb_field_expected(&expected, f);
	if (rs->nsubs > 1)
	{
		char		num[64];

		snprintf(num, sizeof(num), "alternative %u of %u ($or), the closest: ",
				 bi + 1, rs->nsubs);
		xb_str(&reason, num);
	}
	if (best.holds)
		xb_str(&reason, "every field matches, yet the matcher found no match");
	else if (!best.combination)
		reason_alone(&reason, f, ctx);
	else
		reason_together(&reason, &sorted, best.field, ctx);
	if (xb_actual(&actual, f, ctx) > 0)
		e->actual = xb_take(&actual);
	else
		ebm_free(actual.s);
	e->field = xb_take(&field);
	e->op = ebm_memdup(field_op(f), strlen(field_op(f)));
	e->expected = xb_take(&expected);
	e->reason = xb_take(&reason);
	ebm_free(sorted.fields);
	return !(field.nomem || expected.nomem || actual.nomem || reason.nomem ||
			 e->op == NULL);
}

/* Free an explanation. */
void
ebm_explanation_free(ebm_explanation *e)
{
	if (e == NULL)
		return;
	ebm_free(e->field);
	ebm_free(e->op);
	ebm_free(e->expected);
	ebm_free(e->actual);
	ebm_free(e->reason);
	ebm_free(e);
}

/* Explain the match of the event against the pattern (see ebm_explain.h). */
ebm_status
ebm_explain(const ebm_pattern *p, ebm_builder *event, ebm_match_ctx *ctx,
			ebm_explanation **out)
{
	ebm_ruleset *rs;
	ebm_explanation *e;
	ebm_status	st;
	const uint32_t *ids;
	size_t		nids = 0;

	*out = NULL;
	if (p == NULL || event == NULL || ctx == NULL)
		return EBM_ERR_STATE;
	rs = ebm_ruleset_new();
	e = ebm_calloc(1, sizeof(ebm_explanation));
	if (rs == NULL || e == NULL)
	{
		ebm_ruleset_free(rs);
		ebm_free(e);
		return EBM_ERR_NOMEM;
	}
	st = ebm_ruleset_add(rs, 0, p);
	if (st == EBM_OK)
		st = ebm_ruleset_compile(rs);
	/* the verdict: the matcher's own */
	if (st == EBM_OK)
		st = ebm_match(rs, event, ctx, &ids, &nids);
	if (st == EBM_OK && nids > 0)
		e->matched = true;
	else if (st == EBM_OK)
	{
		/* flatten again, as ebm_match does, and decide the parts */
		ctx->trie = rs->paths;
		ctx->ticks = 0;
		ctx->interrupted = false;
		ctx->search_steps = 0;
		ctx->over_budget = false;
		st = ebm_event_flatten(rs->paths, ebm_pathtrie_npaths(rs->paths), event, ctx);
		if (st == EBM_OK && !ebm_ctx_reserve_eval(ctx, rs->maxfields + 2))
			st = EBM_ERR_NOMEM;
		if (st == EBM_OK && !explain_failure(rs, ctx, e))
			st = EBM_ERR_NOMEM;
		if (st == EBM_OK && ctx->interrupted)
			st = EBM_ERR_INTERRUPTED;
		if (st == EBM_OK && ctx->over_budget)
			st = EBM_ERR_LIMIT;
		ebm_match_ctx_trim(ctx);
	}
	ebm_ruleset_free(rs);
	if (st != EBM_OK)
	{
		ebm_explanation_free(e);
		return st;
	}
	*out = e;
	return EBM_OK;
}
