/*-------------------------------------------------------------------------
 *
 * operators.c
 *	  Parse and validate the match list of one field: the array of exact
 *	  values and operator objects ({"prefix": ...}, {"numeric": [...]}, ...)
 *	  that a pattern gives for a leaf field.
 *
 * Each element becomes one ebm_cond; the field matches when any of them
 * does.  Error messages follow event-ruler's wording (which is what AWS
 * returns after "Event pattern is not valid. Reason: ").
 *
 * This file is the lower layer of the parser: pattern_parse.c (objects,
 * paths, $or) calls into it, never the other way.  It also owns the
 * parse's error reporting (ebm_parse_fail) and the list of operator names.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ebm_internal.h"

#define TOK(ps, i) (&(ps)->b->toks[(i)])

/* The match operators; operator_names[] spells them, in this order. */
typedef enum ebm_opname
{
	OP_PREFIX,
	OP_SUFFIX,
	OP_EQUALS_IC,
	OP_WILDCARD,
	OP_NUMERIC,
	OP_EXISTS,
	OP_CIDR,
	OP_ANYTHING_BUT,
	OP_EXACTLY,
	OP_NONE						/* not an operator name */
} ebm_opname;

static const char *const operator_names[] = {
	"prefix", "suffix", "equals-ignore-case", "wildcard", "numeric",
	"exists", "cidr", "anything-but", "exactly"
};

/* The operator named by s (len bytes), or OP_NONE. */
static ebm_opname
operator_of(const char *s, size_t len)
{
	int			i;

	for (i = 0; i < OP_NONE; i++)
		if (strlen(operator_names[i]) == len && memcmp(operator_names[i], s, len) == 0)
			return (ebm_opname) i;
	return OP_NONE;
}

/*
 * Is s the name of a match operator?  (pattern_parse.c asks: an operator
 * name among an array's object keys makes "$or" a plain field.)
 */
bool
ebm_is_operator_name(const char *s, size_t len)
{
	return operator_of(s, len) != OP_NONE;
}

/* Record why the pattern is invalid, at the current path; returns false. */
bool
ebm_parse_fail(ebm_parse *ps, const char *op, const char *fmt,...)
{
	va_list		ap;
	size_t		n;

	if (ps->err == NULL)
		return false;
	va_start(ap, fmt);
	vsnprintf(ps->err->message, sizeof(ps->err->message), fmt, ap);
	va_end(ap);
	n = ps->pathlen < sizeof(ps->err->path) - 1 ? ps->pathlen : sizeof(ps->err->path) - 1;
	memcpy(ps->err->path, ps->path ? ps->path : "", n);
	ps->err->path[n] = '\0';
	snprintf(ps->err->op, sizeof(ps->err->op), "%s", op);
	return false;
}


/* Token index after the value at index i (skips a whole container). */
static uint32_t
next_value(const ebm_parse *ps, uint32_t i)
{
	const ebm_token *t = TOK(ps, i);

	if (t->type == EBM_T_OBJECT || t->type == EBM_T_ARRAY)
		return t->end;
	return i + 1;
}

/* Does token t hold exactly the NUL-free string s? */
static bool
tok_is(const ebm_parse *ps, const ebm_token *t, const char *s)
{
	size_t		n = strlen(s);

	return t->len == n && memcmp(ebm_tok_text(ps->b, t), s, n) == 0;
}

/* Append a literal to a condition (the string is copied, folded if asked). */
static bool
add_literal(ebm_parse *ps, ebm_cond *c, const ebm_token *t, bool fold)
{
	ebm_literal *lit;
	ebm_literal *nl;
	const char *s = ebm_tok_text(ps->b, t);

	nl = ebm_realloc(c->lits, (c->nlits + 1) * sizeof(ebm_literal));
	if (nl == NULL)
		goto nomem;
	c->lits = nl;
	lit = &c->lits[c->nlits];
	memset(lit, 0, sizeof(*lit));
	switch (t->type)
	{
		case EBM_T_STRING:
			lit->vtype = EBM_V_STRING;
			break;
		case EBM_T_NUMBER:
			lit->vtype = EBM_V_NUMBER;
			lit->num = ebm_number_value(s, t->len, &lit->finite);
			break;
		case EBM_T_TRUE:
			lit->vtype = EBM_V_TRUE;
			break;
		case EBM_T_FALSE:
			lit->vtype = EBM_V_FALSE;
			break;
		default:
			lit->vtype = EBM_V_NULL;
			break;
	}
	if (fold && t->type == EBM_T_STRING)
	{
		lit->str = ebm_malloc((size_t) t->len * EBM_CASEFOLD_MAX_GROWTH + 1);
		if (lit->str == NULL)
			goto nomem;
		lit->len = (uint32_t) ebm_casefold(s, t->len, lit->str);
		lit->str[lit->len] = '\0';
	}
	else
	{
		lit->str = ebm_memdup(s, t->len);
		if (lit->str == NULL)
			goto nomem;
		lit->len = t->len;
	}
	lit->digest = ebm_value_digest(lit->vtype, lit->str, lit->len, lit->finite, lit->num);
	c->nlits++;
	return true;
nomem:
	ps->nomem = true;
	return false;
}

/* A number operand must be valid JSON and a finite, representable value. */
static bool
check_number(ebm_parse *ps, const ebm_token *t, const char *op)
{
	const char *s = ebm_tok_text(ps->b, t);
	bool		ok;

	if (!ebm_number_syntax_ok(s, t->len))
		return ebm_parse_fail(ps, op, "Invalid number: %.*s",
							  (int) (t->len > 64 ? 64 : t->len), s);
	(void) ebm_number_value(s, t->len, &ok);
	if (!ok)
		return ebm_parse_fail(ps, op, "Cannot compare number : %.*s",
							  (int) (t->len > 64 ? 64 : t->len), s);
	return true;
}

/*
 * "numeric": ["=", x] or [">"|">=", x] or ["<"|"<=", x] or a lower bound
 * followed by an upper bound, bottom strictly below top.
 */
static bool
parse_numeric(ebm_parse *ps, uint32_t vi, ebm_cond *c)
{
	const ebm_token *arr = TOK(ps, vi);
	uint32_t	i = vi + 1;
	int			term;

	c->kind = EBM_C_NUMERIC;
	if (arr->type != EBM_T_ARRAY)
		return ebm_parse_fail(ps, "numeric", "Value of numeric must be an array.");
	if (arr->len == 0)
		return ebm_parse_fail(ps, "numeric", "Empty arrays are not allowed");
	for (term = 0; i < arr->end; term++)
	{
		const ebm_token *opt = TOK(ps, i);
		const ebm_token *num;
		const char *opname;
		bool		lower;
		bool		incl;
		bool		eq = false;
		double		v;
		bool		ok;

		if (term == 2)
			return ebm_parse_fail(ps, "numeric", "Too many terms in numeric range expression");
		if (opt->type != EBM_T_STRING)
			return ebm_parse_fail(ps, "numeric", "Value of numeric must be an array of operators and numbers");
		if (tok_is(ps, opt, "="))
		{
			eq = true;
			lower = incl = true;
			opname = "equals";
		}
		else if (tok_is(ps, opt, ">") || tok_is(ps, opt, ">="))
		{
			lower = true;
			incl = opt->len == 2;
			opname = incl ? ">=" : ">";
		}
		else if (tok_is(ps, opt, "<") || tok_is(ps, opt, "<="))
		{
			lower = false;
			incl = opt->len == 2;
			opname = incl ? "<=" : "<";
		}
		else
			return ebm_parse_fail(ps, "numeric", "Unrecognized numeric range operator: %.*s",
								  (int) (opt->len > 32 ? 32 : opt->len),
								  ebm_tok_text(ps->b, opt));
		if (term == 1 && (eq || lower || !c->has_lo))
			return ebm_parse_fail(ps, "numeric", "Bad numeric range operator: %s", opname);
		i = next_value(ps, i);
		if (i >= arr->end || TOK(ps, i)->type != EBM_T_NUMBER)
			return ebm_parse_fail(ps, "numeric", "Value of %s must be numeric", opname);
		num = TOK(ps, i);
		if (!check_number(ps, num, "numeric"))
			return false;
		v = ebm_number_value(ebm_tok_text(ps->b, num), num->len, &ok);
		i++;
		if (eq || lower)
		{
			c->has_lo = true;
			c->lo = v;
			c->lo_incl = incl;
		}
		if (eq || !lower)
		{
			c->has_hi = true;
			c->hi = v;
			c->hi_incl = incl;
		}
		if ((eq || !lower) && i < arr->end)
			return ebm_parse_fail(ps, "numeric", "Too many elements in numeric expression");
		if (term == 1 && !(c->lo < c->hi))
			return ebm_parse_fail(ps, "numeric", "Bottom must be less than top");
	}
	return true;
}

/* {"equals-ignore-case": "x"} inside prefix/suffix: the folded string. */
static bool
parse_icase_object(ebm_parse *ps, uint32_t vi, ebm_cond *c, const char *op)
{
	const ebm_token *obj = TOK(ps, vi);
	uint32_t	k = vi + 1;
	uint32_t	last = 0;
	bool		any = false;

	for (; k < obj->end; k = next_value(ps, k + 1))
	{
		if (any && !(TOK(ps, k)->len == TOK(ps, last)->len &&
					 memcmp(ebm_tok_text(ps->b, TOK(ps, k)),
							ebm_tok_text(ps->b, TOK(ps, last)), TOK(ps, k)->len) == 0))
			return ebm_parse_fail(ps, op, "Only one key allowed in match expression");
		last = k;
		any = true;
	}
	if (!any)
		return ebm_parse_fail(ps, op, "%s match pattern must be a string", op);
	if (operator_of(ebm_tok_text(ps->b, TOK(ps, last)), TOK(ps, last)->len) != OP_EQUALS_IC)
		return ebm_parse_fail(ps, op, "Unsupported %s pattern: %.*s", op,
							  (int) (TOK(ps, last)->len > 64 ? 64 : TOK(ps, last)->len),
							  ebm_tok_text(ps->b, TOK(ps, last)));
	if (TOK(ps, last + 1)->type != EBM_T_STRING)
		return ebm_parse_fail(ps, "equals-ignore-case",
							  "equals-ignore-case match pattern must be a string");
	c->icase = true;
	return add_literal(ps, c, TOK(ps, last + 1), true);
}

/* The strings of an anything-but form: one string or a non-empty array. */
static bool
parse_ab_strings(ebm_parse *ps, uint32_t vi, ebm_cond *c, const char *form)
{
	const ebm_token *v = TOK(ps, vi);
	bool		ps_form = (c->abkind == EBM_AB_PREFIX || c->abkind == EBM_AB_SUFFIX);
	bool		fold = (c->abkind == EBM_AB_EQUALS_IC);
	uint32_t	i;
	uint32_t	end;

	if (v->type == EBM_T_STRING)
	{
		i = vi;
		end = vi + 1;
	}
	else if (v->type == EBM_T_ARRAY)
	{
		if (v->len == 0)
			return ebm_parse_fail(ps, "anything-but", "Empty arrays are not allowed");
		i = vi + 1;
		end = v->end;
	}
	else if (v->type == EBM_T_OBJECT && ps_form)
		return ebm_parse_fail(ps, "anything-but", "Value of anything-but must be an array or single string/number value.");
	else
	{
		i = vi;
		end = next_value(ps, vi);
	}
	for (; i < end; i = next_value(ps, i))
	{
		const ebm_token *t = TOK(ps, i);

		if (t->type != EBM_T_STRING)
		{
			if (ps_form)
				return ebm_parse_fail(ps, "anything-but", "prefix/suffix match pattern must be a string");
			if (fold)
				return ebm_parse_fail(ps, "anything-but", "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.");
			return ebm_parse_fail(ps, "anything-but", "%s match pattern must be a string", form);
		}
		if (ps_form && t->len == 0)
			return ebm_parse_fail(ps, "anything-but", "Null prefix/suffix not allowed");
		if (c->abkind == EBM_AB_WILDCARD)
		{
			char		why[128];

			if (!ebm_wildcard_check(ebm_tok_text(ps->b, t), t->len, why, sizeof(why)))
				return ebm_parse_fail(ps, "anything-but", "%s", why);
			if (ebm_wildcard_complexity(ebm_tok_text(ps->b, t), t->len,
										EBM_MAX_WILDCARD_COMPLEXITY) >= EBM_MAX_WILDCARD_COMPLEXITY)
				return ebm_parse_fail(ps, "anything-but", "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character");
		}
		if (!add_literal(ps, c, t, fold))
			return false;
	}
	return true;
}

/*
 * "anything-but": a string, a number, a non-empty array of strings or of
 * numbers, or an object with one of prefix, suffix, equals-ignore-case,
 * wildcard.
 */
static bool
parse_anything_but(ebm_parse *ps, uint32_t vi, ebm_cond *c)
{
	const ebm_token *v = TOK(ps, vi);
	uint32_t	i;

	c->kind = EBM_C_ANYTHING_BUT;
	c->abkind = EBM_AB_VALUES;
	if (v->type == EBM_T_STRING)
		return add_literal(ps, c, v, false);
	if (v->type == EBM_T_NUMBER)
		return check_number(ps, v, "anything-but") && add_literal(ps, c, v, false);
	if (v->type == EBM_T_ARRAY)
	{
		bool		strings = false;
		bool		numbers = false;

		if (v->len == 0)
			return ebm_parse_fail(ps, "anything-but", "Empty arrays are not allowed");
		for (i = vi + 1; i < v->end; i = next_value(ps, i))
		{
			const ebm_token *t = TOK(ps, i);

			if (t->type == EBM_T_STRING)
				strings = true;
			else if (t->type == EBM_T_NUMBER)
			{
				numbers = true;
				if (!check_number(ps, t, "anything-but"))
					return false;
			}
			else
				return ebm_parse_fail(ps, "anything-but", "Inside anything but list, start|null|boolean is not supported.");
			if (strings && numbers)
				return ebm_parse_fail(ps, "anything-but", "Inside anything but list, either all values are number or string, mixed type is not supported");
			if (!add_literal(ps, c, t, false))
				return false;
		}
		return true;
	}
	if (v->type == EBM_T_OBJECT)
	{
		uint32_t	last = 0;
		bool		any = false;
		ebm_opname	name;
		const ebm_token *k;

		for (i = vi + 1; i < v->end; i = next_value(ps, i + 1))
		{
			if (any && !(TOK(ps, i)->len == TOK(ps, last)->len &&
						 memcmp(ebm_tok_text(ps->b, TOK(ps, i)),
								ebm_tok_text(ps->b, TOK(ps, last)), TOK(ps, i)->len) == 0))
				return ebm_parse_fail(ps, "anything-but", "Only one key allowed in match expression");
			last = i;
			any = true;
		}
		if (!any)
			return ebm_parse_fail(ps, "anything-but", "Value of anything-but must be an array or single string/number value.");
		k = TOK(ps, last);
		name = operator_of(ebm_tok_text(ps->b, k), k->len);
		if (name == OP_PREFIX)
			c->abkind = EBM_AB_PREFIX;
		else if (name == OP_SUFFIX)
			c->abkind = EBM_AB_SUFFIX;
		else if (name == OP_EQUALS_IC)
			c->abkind = EBM_AB_EQUALS_IC;
		else if (name == OP_WILDCARD)
			c->abkind = EBM_AB_WILDCARD;
		else
			return ebm_parse_fail(ps, "anything-but", "Unsupported anything-but pattern: %.*s",
								  (int) (k->len > 64 ? 64 : k->len), ebm_tok_text(ps->b, k));
		return parse_ab_strings(ps, last + 1, c,
								c->abkind == EBM_AB_WILDCARD ? "wildcard" : "equals-ignore-case");
	}
	return ebm_parse_fail(ps, "anything-but", "Value of anything-but must be an array or single string/number value.");
}

/* An operator object {"op": value}: exactly one operator. */
static bool
parse_operator(ebm_parse *ps, uint32_t oi, ebm_cond *c)
{
	const ebm_token *obj = TOK(ps, oi);
	const ebm_token *k;
	const ebm_token *v;
	uint32_t	i;
	uint32_t	last = 0;
	bool		any = false;
	char		why[160];
	ebm_opname	name;

	for (i = oi + 1; i < obj->end; i = next_value(ps, i + 1))
	{
		if (any && !(TOK(ps, i)->len == TOK(ps, last)->len &&
					 memcmp(ebm_tok_text(ps->b, TOK(ps, i)),
							ebm_tok_text(ps->b, TOK(ps, last)), TOK(ps, i)->len) == 0))
			return ebm_parse_fail(ps, "", "Only one key allowed in match expression");
		last = i;
		any = true;
	}
	if (!any)
		return ebm_parse_fail(ps, "", "Empty objects are not allowed");
	k = TOK(ps, last);
	v = TOK(ps, last + 1);
	name = operator_of(ebm_tok_text(ps->b, k), k->len);
	if (name == OP_PREFIX || name == OP_SUFFIX)
	{
		const char *op = operator_names[name];

		c->kind = (name == OP_PREFIX) ? EBM_C_PREFIX : EBM_C_SUFFIX;
		if (v->type == EBM_T_STRING)
			return add_literal(ps, c, v, false);
		if (v->type == EBM_T_OBJECT)
			return parse_icase_object(ps, last + 1, c, op);
		return ebm_parse_fail(ps, op, "%s match pattern must be a string", op);
	}
	if (name == OP_EXACTLY)
	{
		/* event-ruler's spelled-out exact match; strings only */
		c->kind = EBM_C_EXACT;
		if (v->type != EBM_T_STRING)
			return ebm_parse_fail(ps, "exactly", "exact match pattern must be a string");
		return add_literal(ps, c, v, false);
	}
	if (name == OP_EQUALS_IC)
	{
		c->kind = EBM_C_EQUALS_IC;
		if (v->type != EBM_T_STRING)
			return ebm_parse_fail(ps, "equals-ignore-case", "equals-ignore-case match pattern must be a string");
		return add_literal(ps, c, v, true);
	}
	if (name == OP_WILDCARD)
	{
		c->kind = EBM_C_WILDCARD;
		if (v->type != EBM_T_STRING)
			return ebm_parse_fail(ps, "wildcard", "wildcard match pattern must be a string");
		if (!ebm_wildcard_check(ebm_tok_text(ps->b, v), v->len, why, sizeof(why)))
			return ebm_parse_fail(ps, "wildcard", "%s", why);
		if (ebm_wildcard_complexity(ebm_tok_text(ps->b, v), v->len,
									EBM_MAX_WILDCARD_COMPLEXITY) >= EBM_MAX_WILDCARD_COMPLEXITY)
			return ebm_parse_fail(ps, "wildcard", "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character");
		return add_literal(ps, c, v, false);
	}
	if (name == OP_NUMERIC)
		return parse_numeric(ps, last + 1, c);
	if (name == OP_EXISTS)
	{
		c->kind = EBM_C_EXISTS;
		if (v->type != EBM_T_TRUE && v->type != EBM_T_FALSE)
			return ebm_parse_fail(ps, "exists", "exists match pattern must be either true or false.");
		c->exists = (v->type == EBM_T_TRUE);
		if (!c->exists)
			ps->absent_ok = true;
		return true;
	}
	if (name == OP_CIDR)
	{
		c->kind = EBM_C_CIDR;
		if (v->type != EBM_T_STRING)
			return ebm_parse_fail(ps, "cidr", "prefix match pattern must be a string");
		if (!ebm_cidr_parse(ebm_tok_text(ps->b, v), v->len, &c->cidr, why, sizeof(why)))
			return ebm_parse_fail(ps, "cidr", "%s", why);
		return true;
	}
	if (name == OP_ANYTHING_BUT)
		return parse_anything_but(ps, last + 1, c);
	return ebm_parse_fail(ps, "", "Unrecognized match type %.*s",
						  (int) (k->len > 64 ? 64 : k->len), ebm_tok_text(ps->b, k));
}

/*
 * Parse the match list (an array token at index arr) of the field f, whose
 * path is already set; fills f->conds.
 */
bool
ebm_parse_match_list(ebm_parse *ps, uint32_t arr, ebm_field *f)
{
	const ebm_token *a = TOK(ps, arr);
	uint32_t	i;

	if (a->len == 0)
		return ebm_parse_fail(ps, "", "Empty arrays are not allowed");
	ps->absent_ok = false;
	f->conds = ebm_calloc(a->len, sizeof(ebm_cond));
	if (f->conds == NULL)
	{
		ps->nomem = true;
		return false;
	}
	for (i = arr + 1; i < a->end; i = next_value(ps, i))
	{
		const ebm_token *t = TOK(ps, i);
		ebm_cond   *c = &f->conds[f->ncond++];

		switch (t->type)
		{
			case EBM_T_OBJECT:
				if (!parse_operator(ps, i, c))
					return false;
				break;
			case EBM_T_ARRAY:
				return ebm_parse_fail(ps, "", "Match value must be String, number, true, false, or null");
			case EBM_T_NUMBER:
				if (!ebm_number_syntax_ok(ebm_tok_text(ps->b, t), t->len))
					return ebm_parse_fail(ps, "", "Invalid number: %.*s",
										  (int) (t->len > 64 ? 64 : t->len),
										  ebm_tok_text(ps->b, t));
				/* FALLTHROUGH */
			default:
				c->kind = EBM_C_EXACT;
				if (!add_literal(ps, c, t, false))
					return false;
				break;
		}
	}
	f->absent_ok = ps->absent_ok;
	return true;
}
