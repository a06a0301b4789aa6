/*-------------------------------------------------------------------------
 *
 * jsonfeed.c
 *	  Test/benchmark helper: JSON text -> jansson tree -> ebm_builder.
 *
 * The library takes numbers as their JSON lexical text, but jansson 2.14
 * keeps only a json_int_t or a double: it rejects integers beyond 64 bits
 * and reals beyond the double range, rounds long mantissas, and turns
 * 1e-400 into 0.  To stay faithful we let jansson do all the parsing and
 * validation, after one honest pre-pass that is a lexer, not a parser: it
 * copies the text, skipping over string literals, and replaces every
 * token outside strings that is exactly a JSON number with a JSON string
 * holding a marker (starting with U+0000, hence JSON_ALLOW_NUL) followed by
 * the number's text.  The walk into the builder turns such strings back
 * into ebm_number() calls with the original text.  Tokens that are not
 * valid numbers are left alone so jansson rejects them as before.  The
 * pre-pass knows nothing of objects, arrays or commas; a marker string used
 * as an object key means the text had a number as a key, and is refused.
 * (A genuine string whose content starts with the marker would be read as
 * a number; the marker is "\u0000ebm-number:" so only a fuzzer finds it.)
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebm_internal.h"			/* ebm_number_syntax_ok() */
#include "jsonfeed.h"

#define MARK "\\u0000ebm-number:"
#define MARK_DECODED "\0ebm-number:"
#define MARK_DECODED_LEN 12

/* Can c be part of a number token? */
static int
numchar(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
		c == 'e' || c == 'E';
}

/* The number-wrapping lexer pass described above; returns malloc'd text. */
static char *
wrap_numbers(const char *in, size_t len, size_t *outlen)
{
	size_t		cap = len * 2 + 64;
	char	   *out = malloc(cap);
	size_t		o = 0;
	size_t		i = 0;

	if (out == NULL)
		return NULL;
	while (i < len)
	{
		char		c = in[i];

		if (o + 64 > cap)
		{
			cap *= 2;
			out = realloc(out, cap);
			if (out == NULL)
				return NULL;
		}
		if (c == '"')
		{
			/* copy a string literal verbatim, escapes included */
			out[o++] = in[i++];
			while (i < len && in[i] != '"')
			{
				if (o + 64 > cap)
				{
					cap *= 2;
					out = realloc(out, cap);
					if (out == NULL)
						return NULL;
				}
				if (in[i] == '\\' && i + 1 < len)
					out[o++] = in[i++];
				out[o++] = in[i++];
			}
			if (i < len)
				out[o++] = in[i++];
		}
		else if (c == '-' || (c >= '0' && c <= '9'))
		{
			size_t		j = i;

			while (j < len && numchar(in[j]))
				j++;
			if (ebm_number_syntax_ok(in + i, j - i))
			{
				size_t		need = o + strlen(MARK) + (j - i) + 3;

				while (need + 64 > cap)
				{
					cap *= 2;
					out = realloc(out, cap);
					if (out == NULL)
						return NULL;
				}
				out[o++] = '"';
				memcpy(out + o, MARK, strlen(MARK));
				o += strlen(MARK);
				memcpy(out + o, in + i, j - i);
				o += j - i;
				out[o++] = '"';
			}
			else
			{
				while (j - i + o + 64 > cap)
				{
					cap *= 2;
					out = realloc(out, cap);
					if (out == NULL)
						return NULL;
				}
				memcpy(out + o, in + i, j - i);
				o += j - i;
			}
			i = j;
		}
		else
			out[o++] = in[i++];
	}
	*outlen = o;
	return out;
}

json_t *
jf_decode(const char *text, size_t len, json_error_t *err)
{
	size_t		wlen = 0;
	char	   *w = wrap_numbers(text, len, &wlen);
	json_t	   *v;

	if (w == NULL)
		return NULL;
	v = json_loadb(w, wlen, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DISABLE_EOF_CHECK, err);
	free(w);
	return v;
}

/* Is this decoded string one of our number markers? */
static inline int
is_marked(const char *s, size_t len)
{
	return len > MARK_DECODED_LEN && s[0] == '\0' &&
		memcmp(s, MARK_DECODED, MARK_DECODED_LEN) == 0;
}

ebm_status
jf_feed(ebm_builder *b, const json_t *v)
{
	ebm_status	st = EBM_OK;

	switch (json_typeof(v))
	{
		case JSON_OBJECT:
			{
				void	   *it;

				if ((st = ebm_begin_object(b)) != EBM_OK)
					return st;
				/* iterate directly: fewer library calls than the foreach macro */
				for (it = json_object_iter((json_t *) v); it;
					 it = json_object_iter_next((json_t *) v, it))
				{
					const char *k = json_object_iter_key(it);
					size_t		klen = json_object_iter_key_len(it);

					if (is_marked(k, klen))
						return EBM_ERR_STATE;	/* a number used as a key */
					if ((st = ebm_key(b, k, klen)) != EBM_OK ||
						(st = jf_feed(b, json_object_iter_value(it))) != EBM_OK)
						return st;
				}
				return ebm_end_object(b);
			}
		case JSON_ARRAY:
			{
				size_t		i,
							n = json_array_size(v);

				if ((st = ebm_begin_array(b)) != EBM_OK)
					return st;
				for (i = 0; i < n; i++)
				{
					if ((st = jf_feed(b, json_array_get(v, i))) != EBM_OK)
						return st;
				}
				return ebm_end_array(b);
			}
		case JSON_STRING:
			{
				const char *s = json_string_value(v);
				size_t		len = json_string_length(v);

				if (is_marked(s, len))
					return ebm_number(b, s + MARK_DECODED_LEN, len - MARK_DECODED_LEN);
				return ebm_string(b, s, len);
			}
		case JSON_INTEGER:
			{
				char		buf[32];
				int			n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
										 json_integer_value(v));

				return ebm_number(b, buf, (size_t) n);
			}
		case JSON_REAL:
			{
				char		buf[40];
				int			n = snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));

				return ebm_number(b, buf, (size_t) n);
			}
		case JSON_TRUE:
			return ebm_bool(b, true);
		case JSON_FALSE:
			return ebm_bool(b, false);
		case JSON_NULL:
			return ebm_null(b);
	}
	return EBM_ERR_STATE;
}

ebm_status
jf_feed_text(ebm_builder *b, const char *text, size_t len)
{
	json_error_t err;
	json_t	   *v = jf_decode(text, len, &err);
	ebm_status	st;

	ebm_builder_reset(b);
	if (v == NULL)
		return EBM_ERR_STATE;
	st = jf_feed(b, v);
	json_decref(v);
	return st;
}
