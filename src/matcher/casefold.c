/*-------------------------------------------------------------------------
 *
 * casefold.c
 *	  Unicode simple case folding of UTF-8 text, for equals-ignore-case.
 *
 * Two strings are equal ignoring case when their foldings are byte-equal.
 * ASCII takes a fast path; other code points are looked up in a sorted
 * table (casefold_table.h, written by gen_casefold_table.py).  Invalid UTF-8 bytes are copied unchanged, so
 * folding never fails.
 *
 *-------------------------------------------------------------------------
 */
#include "ebm_internal.h"
#include "casefold_table.h"

/* Fold one code point with a binary search of the table. */
static uint32_t
fold_cp(uint32_t cp)
{
	size_t		lo = 0;
	size_t		hi = sizeof(ebm_casefold_from) / sizeof(ebm_casefold_from[0]);

	while (lo < hi)
	{
		size_t		mid = (lo + hi) / 2;

		if (ebm_casefold_from[mid] < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < sizeof(ebm_casefold_from) / sizeof(ebm_casefold_from[0]) &&
		ebm_casefold_from[lo] == cp)
		return ebm_casefold_to[lo];
	return cp;
}

/*
 * Decode one UTF-8 sequence at s (n bytes left); returns its length, or 0
 * if the bytes are not well-formed UTF-8.
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t		len;
	size_t		i;
	uint32_t	c;

	if (s[0] < 0xC2)
		return 0;
	else if (s[0] < 0xE0)
	{
		len = 2;
		c = s[0] & 0x1F;
	}
	else if (s[0] < 0xF0)
	{
		len = 3;
		c = s[0] & 0x0F;
	}
	else if (s[0] < 0xF5)
	{
		len = 4;
		c = s[0] & 0x07;
	}
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) ||
		(len == 4 && (c < 0x10000 || c > 0x10FFFF)))
		return 0;
	*cp = c;
	return len;
}

/* Encode a code point as UTF-8; returns the number of bytes written. */
static size_t
utf8_encode(uint32_t c, char *out)
{
	if (c < 0x80)
	{
		out[0] = (char) c;
		return 1;
	}
	if (c < 0x800)
	{
		out[0] = (char) (0xC0 | (c >> 6));
		out[1] = (char) (0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000)
	{
		out[0] = (char) (0xE0 | (c >> 12));
		out[1] = (char) (0x80 | ((c >> 6) & 0x3F));
		out[2] = (char) (0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (c >> 18));
	out[1] = (char) (0x80 | ((c >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((c >> 6) & 0x3F));
	out[3] = (char) (0x80 | (c & 0x3F));
	return 4;
}

/*
 * Write the case folding of s into out, which must have room for
 * len * EBM_CASEFOLD_MAX_GROWTH bytes; returns the folded length.
 */
size_t
ebm_casefold(const char *s, size_t len, char *out)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		i = 0;
	size_t		o = 0;

	while (i < len)
	{
		uint32_t	cp;
		size_t		n;

		if (u[i] < 0x80)
		{
			out[o++] = (char) ((u[i] >= 'A' && u[i] <= 'Z') ? u[i] + 32 : u[i]);
			i++;
			continue;
		}
		n = utf8_decode(u + i, len - i, &cp);
		if (n == 0)
		{
			out[o++] = (char) u[i++];
			continue;
		}
		o += utf8_encode(fold_cp(cp), out + o);
		i += n;
	}
	return o;
}
