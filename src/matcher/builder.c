/*-------------------------------------------------------------------------
 *
 * builder.c
 *	  The SAX-style sink that records one JSON document as flat tokens.
 *
 * The caller walks its own parsed document and calls one function per
 * value; we append a token per call and check that the calls form a valid
 * document (keys only directly inside objects, one value per key, one root
 * value).  Containers learn their end index when they close, so readers can
 * skip whole subtrees.  reset() keeps the buffers (up to a modest size),
 * so a warm builder allocates nothing.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "ebm_internal.h"

/* Create an empty builder. */
ebm_builder *
ebm_builder_new(void)
{
	ebm_builder *b = ebm_calloc(1, sizeof(ebm_builder));

	/* the arena always exists, so even "" has a valid text pointer */
	if (b && !ebm_grow((void **) &b->text, &b->textcap, 256, 1))
	{
		ebm_free(b);
		return NULL;
	}
	return b;
}

/* Free a builder and its buffers. */
void
ebm_builder_free(ebm_builder *b)
{
	if (b == NULL)
		return;
	ebm_free(b->toks);
	ebm_free(b->text);
	ebm_free(b->stack);
	ebm_free(b);
}

/*
 * Forget the document.  Keep the buffers up to EBM_KEEP_SCRATCH bytes each
 * (a warm builder allocates nothing); free larger ones, so that one large
 * document does not leave its high-water mark behind.
 */
void
ebm_builder_reset(ebm_builder *b)
{
	if (b->tokcap * sizeof(ebm_token) > EBM_KEEP_SCRATCH)
	{
		ebm_free(b->toks);
		b->toks = NULL;
		b->tokcap = 0;
	}
	if (b->textcap > EBM_KEEP_SCRATCH)
	{
		char	   *t = ebm_realloc(b->text, 256);

		/* shrinking cannot really fail; if it does, keep the large one */
		if (t)
		{
			b->text = t;
			b->textcap = 256;
		}
	}
	if (b->stackcap * sizeof(uint32_t) > EBM_KEEP_SCRATCH)
	{
		ebm_free(b->stack);
		b->stack = NULL;
		b->stackcap = 0;
	}
	b->ntoks = 0;
	b->textlen = 0;
	b->depth = 0;
	b->expect_key = false;
	b->done = false;
	b->failed = false;
}

/* Mark the builder unusable and return st. */
static ebm_status
fail(ebm_builder *b, ebm_status st)
{
	b->failed = true;
	return st;
}

/*
 * Check that a value (or key) may come now -- keys only where an object
 * waits for one, values everywhere else, nothing after the root -- then
 * append its token, copying the text, if any, into the arena.
 */
static inline ebm_status
push_token(ebm_builder *b, ebm_toktype type, const char *s, size_t len)
{
	ebm_token  *t;

	if (b->failed || b->done)
		return EBM_ERR_STATE;
	if ((type == EBM_T_KEY) != b->expect_key)
		return fail(b, EBM_ERR_STATE);
	if (b->ntoks >= UINT32_MAX - 1 || len > UINT32_MAX)
		return fail(b, EBM_ERR_NOMEM);
	if (!ebm_reserve((void **) &b->toks, &b->tokcap, b->ntoks + 1, sizeof(ebm_token)))
		return fail(b, EBM_ERR_NOMEM);
	t = &b->toks[b->ntoks++];
	t->type = (uint8_t) type;
	t->len = (uint32_t) len;
	t->off = b->textlen;
	t->end = 0;
	if (len)
	{
		/* 8 bytes of slack: readers may load a whole word at a string's end */
		if (!ebm_reserve((void **) &b->text, &b->textcap, b->textlen + len + 8, 1))
			return fail(b, EBM_ERR_NOMEM);
		memcpy(b->text + b->textlen, s, len);
		b->textlen += len;
	}
	if (type == EBM_T_KEY)
		b->expect_key = false;
	else if (b->depth == 0)
		b->done = (type != EBM_T_OBJECT && type != EBM_T_ARRAY);
	else
	{
		ebm_token  *parent = &b->toks[b->stack[b->depth - 1]];

		parent->len++;			/* one more member */
		b->expect_key = (parent->type == EBM_T_OBJECT);
	}
	return EBM_OK;
}

/* Open a container: record it and push it on the stack of open ones. */
static ebm_status
begin_container(ebm_builder *b, ebm_toktype type)
{
	ebm_status	st = push_token(b, type, NULL, 0);

	if (st != EBM_OK)
		return st;
	if (!ebm_reserve((void **) &b->stack, &b->stackcap, b->depth + 1,
					 sizeof(uint32_t)))
		return fail(b, EBM_ERR_NOMEM);
	b->stack[b->depth++] = (uint32_t) (b->ntoks - 1);
	b->expect_key = (type == EBM_T_OBJECT);
	return EBM_OK;
}

/* Close the innermost container, which must be of the given type. */
static ebm_status
end_container(ebm_builder *b, ebm_toktype type)
{
	uint32_t	open;

	if (b->failed || b->depth == 0)
		return EBM_ERR_STATE;
	open = b->stack[b->depth - 1];
	if (b->toks[open].type != type ||
		(type == EBM_T_OBJECT && !b->expect_key))
	{
		b->failed = true;
		return EBM_ERR_STATE;
	}
	b->toks[open].end = (uint32_t) b->ntoks;
	b->depth--;
	if (b->depth == 0)
	{
		b->done = true;
		b->expect_key = false;
	}
	else
		b->expect_key = (b->toks[b->stack[b->depth - 1]].type == EBM_T_OBJECT);
	return EBM_OK;
}

/* Start an object. */
ebm_status
ebm_begin_object(ebm_builder *b)
{
	return begin_container(b, EBM_T_OBJECT);
}

/* End the current object. */
ebm_status
ebm_end_object(ebm_builder *b)
{
	return end_container(b, EBM_T_OBJECT);
}

/* Start an array. */
ebm_status
ebm_begin_array(ebm_builder *b)
{
	return begin_container(b, EBM_T_ARRAY);
}

/* End the current array. */
ebm_status
ebm_end_array(ebm_builder *b)
{
	return end_container(b, EBM_T_ARRAY);
}

/* An object key (unescaped UTF-8). */
ebm_status
ebm_key(ebm_builder *b, const char *s, size_t len)
{
	return push_token(b, EBM_T_KEY, s ? s : "", s ? len : 0);
}

/* A string value (unescaped UTF-8, may contain NUL). */
ebm_status
ebm_string(ebm_builder *b, const char *s, size_t len)
{
	return push_token(b, EBM_T_STRING, s ? s : "", s ? len : 0);
}

/* A number, as its JSON lexical text. */
ebm_status
ebm_number(ebm_builder *b, const char *text, size_t len)
{
	return push_token(b, EBM_T_NUMBER, text ? text : "", text ? len : 0);
}

/* true or false. */
ebm_status
ebm_bool(ebm_builder *b, bool v)
{
	return push_token(b, v ? EBM_T_TRUE : EBM_T_FALSE, NULL, 0);
}

/* null. */
ebm_status
ebm_null(ebm_builder *b)
{
	return push_token(b, EBM_T_NULL, NULL, 0);
}
