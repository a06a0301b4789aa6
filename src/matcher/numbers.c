/*-------------------------------------------------------------------------
 *
 * numbers.c
 *	  JSON numbers: syntax check, value, and a hash key by value.
 *
 * Numbers reach us as their lexical text.  Patterns and events compare them
 * by value ("300", "300.0" and "3.0e2" are equal), as IEEE doubles, which is
 * also the precision EventBridge documents for numeric matching.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ebm_internal.h"

/* True if s is exactly a JSON number: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
bool
ebm_number_syntax_ok(const char *s, size_t len)
{
	size_t		i = 0;

	if (i < len && s[i] == '-')
		i++;
	if (i >= len)
		return false;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
	{
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	else
		return false;
	if (i < len && s[i] == '.')
	{
		i++;
		if (i >= len || s[i] < '0' || s[i] > '9')
			return false;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || s[i] < '0' || s[i] > '9')
			return false;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return i == len;
}

/* True if the mantissa of a syntactically valid number has a nonzero digit. */
static bool
mantissa_nonzero(const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len && s[i] != 'e' && s[i] != 'E'; i++)
		if (s[i] >= '1' && s[i] <= '9')
			return true;
	return false;
}

/*
 * Exact powers of ten that a double holds exactly.
 */
static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/*
 * Fast path for the common numbers: at most 15 significant digits and a
 * small decimal exponent.  Then the digits and the power of ten are both
 * exact doubles and one multiplication or division rounds correctly, so
 * the result equals strtod's (Clinger's observation).  Returns false when
 * the number needs the general path.
 */
static bool
fast_value(const char *s, size_t len, double *out)
{
	size_t		i = 0;
	uint64_t	m = 0;
	int			digits = 0;
	int			scale = 0;		/* decimal exponent */
	int			e = 0;
	bool		neg = false;
	bool		eneg = false;
	double		v;

	if (s[0] == '-')
	{
		neg = true;
		i++;
	}
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
	{
		if (m || s[i] != '0')
			digits++;
		m = m * 10 + (uint64_t) (s[i] - '0');
		if (digits > 15)
			return false;
	}
	if (i < len && s[i] == '.')
	{
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		{
			if (m || s[i] != '0')
				digits++;
			m = m * 10 + (uint64_t) (s[i] - '0');
			scale--;
			if (digits > 15)
				return false;
		}
	}
	if (i < len)
	{
		/* exponent: the syntax was checked, so s[i] is 'e' or 'E' */
		i++;
		if (s[i] == '+' || s[i] == '-')
			eneg = (s[i++] == '-');
		for (; i < len; i++)
		{
			e = e * 10 + (s[i] - '0');
			if (e > 400)
				return false;
		}
		scale += eneg ? -e : e;
	}
	v = (double) m;
	if (scale < -22 || scale > 22)
		return false;
	v = scale < 0 ? v / pow10_exact[-scale] : v * pow10_exact[scale];
	*out = neg ? -v : v;
	return true;
}

/*
 * The value of a number text.  *ok is false when the text is not a JSON
 * number, or its value is not a finite double, or a nonzero value
 * underflows to zero: such numbers can only be compared as text.
 */
double
ebm_number_value(const char *s, size_t len, bool *ok)
{
	char		buf[64];
	char	   *heap = NULL;
	char	   *p = buf;
	char	   *end;
	double		v;

	*ok = false;
	if (!ebm_number_syntax_ok(s, len))
		return 0.0;
	if (fast_value(s, len, &v))
	{
		*ok = true;
		return v == 0.0 ? 0.0 : v;	/* -0 equals 0 */
	}
	if (len >= sizeof(buf))
	{
		heap = ebm_malloc(len + 1);
		if (heap == NULL)
			return 0.0;
		p = heap;
	}
	memcpy(p, s, len);
	p[len] = '\0';
	v = strtod(p, &end);
	ebm_free(heap);
	if (!isfinite(v))
		return 0.0;
	if (v == 0.0 && mantissa_nonzero(s, len))
		return 0.0;				/* underflow: 1e-400 is not zero */
	if (v == 0.0)
		v = 0.0;				/* -0 equals 0 */
	*ok = true;
	return v;
}

/* The bits of a double, for hashing numbers by value (-0 is already 0). */
uint64_t
ebm_number_key(double v)
{
	uint64_t	k;

	memcpy(&k, &v, sizeof(k));
	return k;
}
