/*-------------------------------------------------------------------------
 *
 * pattern_parse.c
 *	  Turn a pattern document into sub-rules: the structure of a pattern.
 *
 * A pattern is an object whose members are either nested objects (more of
 * the path) or match lists (operators.c) for a leaf field.  "$or" with an
 * array of two or more plain objects is a disjunction; we expand it here,
 * so a pattern becomes an OR of sub-rules, each a plain conjunction of
 * fields.  Anything else named "$or" is an ordinary field name, as in
 * event-ruler.  Duplicate keys: the last one wins.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "ebm_internal.h"

#define TOK(ps, i) (&(ps)->b->toks[(i)])

/* A list of alternatives being built: each one a conjunction of fields. */
typedef struct alts
{
	ebm_subrule *subs;
	uint32_t	n;
} alts;

/* Free a list of alternatives. */
static void
alts_free(alts *a)
{
	uint32_t	i;

	for (i = 0; i < a->n; i++)
		ebm_subrule_free_contents(&a->subs[i]);
	ebm_free(a->subs);
	a->subs = NULL;
	a->n = 0;
}

/*
 * Append a deep copy of field f to sub-rule s.  A field already there with
 * the same path is replaced: the one met later in the document wins, as in
 * event-ruler (this covers "a.b" next to {"a": {"b": ...}}, and a field of
 * an $or alternative overriding the same field outside it).
 */
static bool
subrule_add_field(ebm_subrule *s, const ebm_field *f)
{
	ebm_field  *nf;
	uint32_t	i;

	for (i = 0; i < s->nfields; i++)
		if (s->fields[i].pathlen == f->pathlen &&
			memcmp(s->fields[i].path, f->path, f->pathlen) == 0)
		{
			ebm_field	copy;

			if (!ebm_field_copy(&copy, f))
				return false;
			ebm_field_free_contents(&s->fields[i]);
			s->fields[i] = copy;
			return true;
		}
	nf = ebm_realloc(s->fields, (s->nfields + 1) * sizeof(ebm_field));
	if (nf == NULL)
		return false;
	s->fields = nf;
	if (!ebm_field_copy(&s->fields[s->nfields], f))
		return false;
	s->nfields++;
	return true;
}

/* Replace *a by the cross product a x b: every pair's fields together. */
static bool
alts_cross(ebm_parse *ps, alts *a, const alts *b)
{
	alts		out = {NULL, 0};
	uint32_t	i,
				j,
				k;

	if ((uint64_t) a->n * b->n > EBM_MAX_SUBRULES)
		return ebm_parse_fail(ps, "$or", "Too many combinations of $or alternatives (at most %d)",
							  EBM_MAX_SUBRULES);
	out.subs = ebm_calloc((size_t) a->n * b->n, sizeof(ebm_subrule));
	if (out.subs == NULL)
		goto nomem;
	for (i = 0; i < a->n; i++)
		for (j = 0; j < b->n; j++)
		{
			ebm_subrule *s = &out.subs[out.n++];

			for (k = 0; k < a->subs[i].nfields; k++)
				if (!subrule_add_field(s, &a->subs[i].fields[k]))
					goto nomem;
			for (k = 0; k < b->subs[j].nfields; k++)
				if (!subrule_add_field(s, &b->subs[j].fields[k]))
					goto nomem;
		}
	alts_free(a);
	*a = out;
	return true;
nomem:
	alts_free(&out);
	ps->nomem = true;
	return false;
}

/* Set the current path to prefix + "." + key (or key at the top). */
static bool
path_push(ebm_parse *ps, size_t base, const char *key, size_t len)
{
	size_t		need = base + 1 + len + 1;

	if (!ebm_grow((void **) &ps->path, &ps->pathcap, need, 1))
	{
		ps->nomem = true;
		return false;
	}
	ps->pathlen = base;
	if (base > 0)
		ps->path[ps->pathlen++] = '.';
	memcpy(ps->path + ps->pathlen, key, len);
	ps->pathlen += len;
	ps->path[ps->pathlen] = '\0';
	return true;
}

/*
 * Is the value at vi a real $or: an array of at least two objects, none
 * with an operator name among its keys?
 */
static bool
is_real_or(const ebm_parse *ps, uint32_t vi)
{
	const ebm_token *a = TOK(ps, vi);
	uint32_t	i;

	if (a->type != EBM_T_ARRAY || a->len < 2)
		return false;
	for (i = vi + 1; i < a->end; i = TOK(ps, i)->type == EBM_T_OBJECT ||
		 TOK(ps, i)->type == EBM_T_ARRAY ? TOK(ps, i)->end : i + 1)
	{
		const ebm_token *o = TOK(ps, i);
		uint32_t	k;

		if (o->type != EBM_T_OBJECT)
			return false;
		for (k = i + 1; k < o->end;)
		{
			const ebm_token *key = TOK(ps, k);
			const ebm_token *v = TOK(ps, k + 1);

			if (ebm_is_operator_name(ebm_tok_text(ps->b, key), key->len))
				return false;
			k = (v->type == EBM_T_OBJECT || v->type == EBM_T_ARRAY) ? v->end : k + 2;
		}
	}
	return true;
}

/* Does the key at index k appear again later in the object ending at end? */
static bool
key_repeats(const ebm_parse *ps, uint32_t k, uint32_t end)
{
	const ebm_token *key = TOK(ps, k);
	uint32_t	i = k + 1;

	i = (TOK(ps, i)->type == EBM_T_OBJECT || TOK(ps, i)->type == EBM_T_ARRAY) ? TOK(ps, i)->end : i + 1;
	while (i < end)
	{
		const ebm_token *other = TOK(ps, i);
		const ebm_token *v = TOK(ps, i + 1);

		if (other->len == key->len &&
			memcmp(ebm_tok_text(ps->b, other), ebm_tok_text(ps->b, key), key->len) == 0)
			return true;
		i = (v->type == EBM_T_OBJECT || v->type == EBM_T_ARRAY) ? v->end : i + 2;
	}
	return false;
}

static bool parse_object(ebm_parse *ps, uint32_t oi, int depth, alts *out);

/* Parse the member key (index k) of an object at the current path base. */
static bool
parse_member(ebm_parse *ps, uint32_t k, size_t base, int depth, alts *acc)
{
	const ebm_token *key = TOK(ps, k);
	const ebm_token *v = TOK(ps, k + 1);
	const char *ks = ebm_tok_text(ps->b, key);
	uint32_t	i;

	if (key->len == 3 && memcmp(ks, "$or", 3) == 0 && is_real_or(ps, k + 1))
	{
		alts		uni = {NULL, 0};
		bool		ok = true;

		for (i = k + 2; ok && i < v->end; i = TOK(ps, i)->end)
		{
			alts		one = {NULL, 0};
			ebm_subrule *ns;

			ps->pathlen = base;
			if (ps->path)
				ps->path[base] = '\0';
			ok = parse_object(ps, i, depth + 1, &one);
			if (ok && (uint64_t) uni.n + one.n > EBM_MAX_SUBRULES)
				ok = ebm_parse_fail(ps, "$or", "Too many combinations of $or alternatives (at most %d)",
									EBM_MAX_SUBRULES);
			if (ok)
			{
				ns = ebm_realloc(uni.subs, (uni.n + one.n) * sizeof(ebm_subrule));
				if (ns == NULL)
				{
					ps->nomem = true;
					ok = false;
				}
				else
				{
					uni.subs = ns;
					memcpy(uni.subs + uni.n, one.subs, one.n * sizeof(ebm_subrule));
					uni.n += one.n;
					ebm_free(one.subs);
					one.subs = NULL;
					one.n = 0;
				}
			}
			alts_free(&one);
		}
		ok = ok && alts_cross(ps, acc, &uni);
		alts_free(&uni);
		return ok;
	}
	if (!path_push(ps, base, ks, key->len))
		return false;
	if (v->type == EBM_T_OBJECT)
	{
		alts		sub = {NULL, 0};
		bool		ok = parse_object(ps, k + 1, depth + 1, &sub) && alts_cross(ps, acc, &sub);

		alts_free(&sub);
		return ok;
	}
	if (v->type == EBM_T_ARRAY)
	{
		ebm_field	f;
		bool		ok;

		memset(&f, 0, sizeof(f));
		f.path = ebm_memdup(ps->path, ps->pathlen);
		f.pathlen = (uint32_t) ps->pathlen;
		if (f.path == NULL)
		{
			ps->nomem = true;
			return false;
		}
		ok = ebm_parse_match_list(ps, k + 1, &f);
		for (i = 0; ok && i < acc->n; i++)
			if (!subrule_add_field(&acc->subs[i], &f))
			{
				ps->nomem = true;
				ok = false;
			}
		ebm_field_free_contents(&f);
		return ok;
	}
	return ebm_parse_fail(ps, "", "\"%.*s\" must be an object or an array",
						  (int) (key->len > 64 ? 64 : key->len), ks);
}

/*
 * Parse the object at token oi (whose path is ps->path) into a list of
 * alternatives.
 */
static bool
parse_object(ebm_parse *ps, uint32_t oi, int depth, alts *out)
{
	const ebm_token *o = TOK(ps, oi);
	size_t		base = ps->pathlen;
	uint32_t	k;

	if (depth > EBM_MAX_PATTERN_DEPTH)
		return ebm_parse_fail(ps, "", "Pattern is nested too deeply (more than %d levels)",
							  EBM_MAX_PATTERN_DEPTH);
	if (o->len == 0)
		return ebm_parse_fail(ps, "", "Empty objects are not allowed");
	out->subs = ebm_calloc(1, sizeof(ebm_subrule));
	if (out->subs == NULL)
	{
		ps->nomem = true;
		return false;
	}
	out->n = 1;
	for (k = oi + 1; k < o->end;)
	{
		const ebm_token *v = TOK(ps, k + 1);
		uint32_t	next = (v->type == EBM_T_OBJECT || v->type == EBM_T_ARRAY) ? v->end : k + 2;

		if (!key_repeats(ps, k, o->end) &&
			!parse_member(ps, k, base, depth, out))
			return false;
		ps->pathlen = base;
		if (ps->path)
			ps->path[base] = '\0';
		k = next;
	}
	return true;
}

/* Characters a string takes in JSON text, quotes and escapes included. */
static size_t
json_string_chars(const char *s, size_t len)
{
	size_t		n = 2;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c & 0xC0) == 0x80)
			continue;			/* UTF-8 continuation: same character */
		if (c == '"' || c == '\\')
			n += 2;
		else if (c < 0x20)
			n += (c == '\n' || c == '\t' || c == '\r' || c == '\b' || c == '\f') ? 2 : 6;
		else
			n++;
	}
	return n;
}

/*
 * Size of the document in characters, written as compact JSON: what
 * EventBridge's pattern size quota counts, for a pattern without spaces.
 */
static size_t
compact_size(const ebm_builder *b)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < b->ntoks; i++)
	{
		const ebm_token *t = &b->toks[i];

		switch (t->type)
		{
			case EBM_T_OBJECT:
			case EBM_T_ARRAY:
				n += 2 + (t->len ? t->len - 1 : 0);
				break;
			case EBM_T_KEY:
				n += json_string_chars(ebm_tok_text(b, t), t->len) + 1;
				break;
			case EBM_T_STRING:
				n += json_string_chars(ebm_tok_text(b, t), t->len);
				break;
			case EBM_T_NUMBER:
				n += t->len;
				break;
			case EBM_T_FALSE:
				n += 5;
				break;
			default:
				n += 4;
				break;
		}
	}
	return n;
}

/*
 * Read the finished pattern document held by the builder and validate it,
 * with EventBridge's default size quota.  On EBM_ERR_PATTERN *err says why.
 */
ebm_status
ebm_pattern_parse(ebm_builder *b, ebm_pattern **out, ebm_error *err)
{
	return ebm_pattern_parse_limited(b, out, err, EBM_DEFAULT_MAX_PATTERN_SIZE);
}

/*
 * ebm_pattern_parse with another size limit (in characters of compact JSON;
 * 0: none), for a bus whose quota was raised.
 */
ebm_status
ebm_pattern_parse_limited(ebm_builder *b, ebm_pattern **out, ebm_error *err,
						  size_t max_size)
{
	ebm_parse	ps;
	alts		a = {NULL, 0};
	ebm_pattern *p;
	ebm_error	dummy;
	bool		ok;

	*out = NULL;
	if (err == NULL)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (b == NULL || !b->done || b->failed || b->ntoks == 0)
		return EBM_ERR_STATE;
	memset(&ps, 0, sizeof(ps));
	ps.b = b;
	ps.err = err;
	if (b->toks[0].type != EBM_T_OBJECT)
	{
		ebm_parse_fail(&ps, "", "Filter is not an object");
		return EBM_ERR_PATTERN;
	}
	if (max_size && compact_size(b) > max_size)
	{
		ebm_parse_fail(&ps, "", "Event pattern is too long: %zu characters as compact JSON, the limit is %zu",
					   compact_size(b), max_size);
		return EBM_ERR_PATTERN;
	}
	ok = parse_object(&ps, 0, 1, &a);
	ebm_free(ps.path);
	if (!ok)
	{
		alts_free(&a);
		return ps.nomem ? EBM_ERR_NOMEM : EBM_ERR_PATTERN;
	}
	p = ebm_calloc(1, sizeof(ebm_pattern));
	if (p == NULL)
	{
		alts_free(&a);
		return EBM_ERR_NOMEM;
	}
	p->subs = a.subs;
	p->nsub = a.n;
	*out = p;
	return EBM_OK;
}
