/*-------------------------------------------------------------------------
 *
 * pattern.c
 *	  Ownership of parsed patterns: copy and free conditions, fields and
 *	  sub-rules.
 *
 * A pattern owns every byte it points to, so the builder it came from can
 * be reused and a rule set can copy just what it needs.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "ebm_internal.h"

/* Free what a condition points to (not the condition itself). */
void
ebm_cond_free_contents(ebm_cond *c)
{
	uint32_t	i;

	for (i = 0; i < c->nlits; i++)
		ebm_free(c->lits[i].str);
	ebm_free(c->lits);
	c->lits = NULL;
	c->nlits = 0;
}

/* Deep-copy a condition; false when out of memory (dst is then empty). */
bool
ebm_cond_copy(ebm_cond *dst, const ebm_cond *src)
{
	uint32_t	i;

	*dst = *src;
	dst->lits = NULL;
	dst->nlits = 0;
	if (src->nlits == 0)
		return true;
	dst->lits = ebm_calloc(src->nlits, sizeof(ebm_literal));
	if (dst->lits == NULL)
		return false;
	for (i = 0; i < src->nlits; i++)
	{
		dst->lits[i] = src->lits[i];
		dst->lits[i].str = ebm_memdup(src->lits[i].str, src->lits[i].len);
		if (dst->lits[i].str == NULL)
		{
			dst->nlits = i;
			ebm_cond_free_contents(dst);
			return false;
		}
	}
	dst->nlits = src->nlits;
	return true;
}

/* Free what a field points to. */
static void
field_free_contents(ebm_field *f)
{
	uint32_t	i;

	for (i = 0; i < f->ncond; i++)
		ebm_cond_free_contents(&f->conds[i]);
	ebm_free(f->conds);
	ebm_free(f->path);
	f->conds = NULL;
	f->path = NULL;
	f->ncond = 0;
}

/* Free what a sub-rule points to. */
void
ebm_subrule_free_contents(ebm_subrule *s)
{
	uint32_t	i;

	for (i = 0; i < s->nfields; i++)
		field_free_contents(&s->fields[i]);
	ebm_free(s->fields);
	s->fields = NULL;
	s->nfields = 0;
}

/* Free a pattern. */
void
ebm_pattern_free(ebm_pattern *p)
{
	uint32_t	i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nsub; i++)
		ebm_subrule_free_contents(&p->subs[i]);
	ebm_free(p->subs);
	ebm_free(p);
}

/* Deep-copy a field; false when out of memory (dst is then empty). */
bool
ebm_field_copy(ebm_field *dst, const ebm_field *src)
{
	uint32_t	i;

	memset(dst, 0, sizeof(*dst));
	dst->path = ebm_memdup(src->path, src->pathlen);
	dst->conds = ebm_calloc(src->ncond ? src->ncond : 1, sizeof(ebm_cond));
	if (dst->path == NULL || dst->conds == NULL)
	{
		field_free_contents(dst);
		return false;
	}
	dst->pathlen = src->pathlen;
	dst->path_id = src->path_id;
	dst->absent_ok = src->absent_ok;
	for (i = 0; i < src->ncond; i++)
	{
		if (!ebm_cond_copy(&dst->conds[i], &src->conds[i]))
		{
			field_free_contents(dst);
			return false;
		}
		dst->ncond = i + 1;
	}
	return true;
}

/* Free what a field points to (exported for the parser). */
void
ebm_field_free_contents(ebm_field *f)
{
	field_free_contents(f);
}

/* Round n up to a multiple of 8, for the packed layout below. */
static size_t
align8(size_t n)
{
	return (n + 7) & ~(size_t) 7;
}

/*
 * Bytes needed to pack a sub-rule (see ebm_subrule_pack_into).
 *
 * A packed sub-rule is ONE block: the fields array, then for each
 * field in turn its conditions, their literals and their strings; the
 * paths come last.  A rule set keeps its sub-rules this way so that deciding a
 * candidate reads a few consecutive cache lines, in the order eval.c walks
 * them, instead of chasing five levels of pointers.
 */
size_t
ebm_subrule_packed_size(const ebm_subrule *src)
{
	size_t		size = align8(src->nfields * sizeof(ebm_field));
	uint32_t	i,
				k,
				j;

	for (i = 0; i < src->nfields; i++)
	{
		const ebm_field *f = &src->fields[i];
		size_t		nbytes = 0;

		size += align8(f->ncond * sizeof(ebm_cond));
		for (k = 0; k < f->ncond; k++)
		{
			size += align8(f->conds[k].nlits * sizeof(ebm_literal));
			for (j = 0; j < f->conds[k].nlits; j++)
				nbytes += f->conds[k].lits[j].len + 1;
		}
		size += align8(nbytes) + f->pathlen + 1;
	}
	return align8(size);
}

/* Pack src into dst at block, which has ebm_subrule_packed_size() bytes. */
void
ebm_subrule_pack_into(ebm_subrule *dst, const ebm_subrule *src, char *block)
{
	char	   *at;
	ebm_field  *fields;
	uint32_t	i,
				k,
				j;

	fields = (ebm_field *) block;
	at = block + align8(src->nfields * sizeof(ebm_field));
	for (i = 0; i < src->nfields; i++)
	{
		const ebm_field *f = &src->fields[i];
		ebm_cond   *conds = (ebm_cond *) at;
		char	   *bytes;

		at += align8(f->ncond * sizeof(ebm_cond));
		fields[i] = *f;
		fields[i].conds = conds;
		for (k = 0; k < f->ncond; k++)
		{
			conds[k] = f->conds[k];
			conds[k].lits = (ebm_literal *) at;
			at += align8(f->conds[k].nlits * sizeof(ebm_literal));
		}
		bytes = at;
		for (k = 0; k < f->ncond; k++)
			for (j = 0; j < f->conds[k].nlits; j++)
			{
				ebm_literal *l = &conds[k].lits[j];

				*l = f->conds[k].lits[j];
				l->str = bytes;
				memcpy(bytes, f->conds[k].lits[j].str, l->len + 1);
				bytes += l->len + 1;
			}
		at += align8((size_t) (bytes - at));
	}
	/* paths last: deciding never reads them */
	for (i = 0; i < src->nfields; i++)
	{
		fields[i].path = at;
		memcpy(at, src->fields[i].path, src->fields[i].pathlen + 1);
		at += src->fields[i].pathlen + 1;
	}
	dst->fields = fields;
	dst->nfields = src->nfields;
	dst->rank = src->rank;
}

/* Pack a sub-rule into a block of its own; free with ebm_free(dst->fields). */
bool
ebm_subrule_pack(ebm_subrule *dst, const ebm_subrule *src)
{
	char	   *block = ebm_malloc(ebm_subrule_packed_size(src));

	if (block == NULL)
		return false;
	ebm_subrule_pack_into(dst, src, block);
	return true;
}
