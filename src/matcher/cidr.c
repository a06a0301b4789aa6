/*-------------------------------------------------------------------------
 *
 * cidr.c
 *	  IPv4 and IPv6 address blocks for the "cidr" operator.
 *
 * A pattern gives "address/bits"; an event string matches when it parses as
 * an address of the same family whose first bits equal the block's.  As in
 * event-ruler, IPv4 octets are read as decimal even with leading zeros
 * ("10.0.0.010" is 10.0.0.10), IPv6 accepts "::" compression, either hex
 * case and a trailing dotted IPv4 part.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "ebm_internal.h"

/* Parse a dotted-quad IPv4 address into out[4]. */
static bool
parse_ipv4(const char *s, size_t len, uint8_t *out)
{
	size_t		i = 0;
	int			part;

	for (part = 0; part < 4; part++)
	{
		unsigned	v = 0;
		size_t		digits = 0;

		if (part > 0)
		{
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4)
		{
			v = v * 10 + (unsigned) (s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255)
			return false;
		out[part] = (uint8_t) v;
	}
	return i == len;
}

/* Value of one hex digit, or -1. */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse an IPv6 address (with optional "::" and trailing IPv4) into out. */
static bool
parse_ipv6(const char *s, size_t len, uint8_t *out)
{
	uint16_t	groups[8];
	int			ngroups = 0;
	int			gap = -1;		/* group index where "::" stands */
	size_t		i = 0;
	int			k;

	if (len < 2)
		return false;
	if (s[0] == ':')
	{
		if (s[1] != ':')
			return false;
		gap = 0;
		i = 2;
		if (i == len)
		{
			memset(out, 0, 16);
			return true;
		}
	}
	while (i < len)
	{
		size_t		start = i;
		unsigned	v = 0;
		int			h;

		if (ngroups >= 8)
			return false;
		while (i < len && (h = hexval(s[i])) >= 0 && i - start < 4)
		{
			v = v * 16 + (unsigned) h;
			i++;
		}
		if (i < len && s[i] == '.')
		{
			/* trailing IPv4 part takes two groups */
			uint8_t		v4[4];
			size_t		end = start;

			while (end < len && s[end] != ':')
				end++;
			if (end != len || ngroups > 6 || !parse_ipv4(s + start, len - start, v4))
				return false;
			groups[ngroups++] = (uint16_t) ((v4[0] << 8) | v4[1]);
			groups[ngroups++] = (uint16_t) ((v4[2] << 8) | v4[3]);
			i = len;
			break;
		}
		if (i == start)
			return false;
		groups[ngroups++] = (uint16_t) v;
		if (i == len)
			break;
		if (s[i] != ':')
			return false;
		i++;
		if (i < len && s[i] == ':')
		{
			if (gap >= 0)
				return false;
			gap = ngroups;
			i++;
			if (i == len)
				break;
		}
		else if (i == len)
			return false;
	}
	if (gap < 0 ? ngroups != 8 : ngroups > 7)
		return false;
	memset(out, 0, 16);
	for (k = 0; k < ngroups; k++)
	{
		int			pos = (gap >= 0 && k >= gap) ? k + (8 - ngroups) : k;

		out[2 * pos] = (uint8_t) (groups[k] >> 8);
		out[2 * pos + 1] = (uint8_t) (groups[k] & 0xFF);
	}
	return true;
}

/* Parse an address of either family; returns 4, 6, or 0 if it is neither. */
static int
parse_ip(const char *s, size_t len, uint8_t *out)
{
	if (memchr(s, ':', len) != NULL)
		return parse_ipv6(s, len, out) ? 6 : 0;
	return parse_ipv4(s, len, out) ? 4 : 0;
}

/*
 * Parse a pattern's CIDR block.  On failure writes the reason, worded like
 * event-ruler's, into why.  As in event-ruler, a block must leave at least
 * one host bit: /32 (IPv4) and /128 (IPv6) are rejected.
 */
bool
ebm_cidr_parse(const char *s, size_t len, ebm_cidr *out, char *why,
			   size_t whylen)
{
	const char *slash = memchr(s, '/', len);
	size_t		alen;
	unsigned	bits = 0;
	size_t		i;
	int			fam;
	unsigned	maxbits;

	if (slash == NULL || memchr(slash + 1, '/', len - (size_t) (slash - s) - 1))
	{
		snprintf(why, whylen, "Malformed CIDR, one '/' required");
		return false;
	}
	alen = (size_t) (slash - s);
	if ((size_t) (slash - s) + 1 == len)
	{
		snprintf(why, whylen, "Malformed CIDR, mask bits must be an integer");
		return false;
	}
	for (i = alen + 1; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9' || bits > 1000)
		{
			snprintf(why, whylen, "Malformed CIDR, mask bits must be an integer");
			return false;
		}
		bits = bits * 10 + (unsigned) (s[i] - '0');
	}
	memset(out, 0, sizeof(*out));
	fam = parse_ip(s, alen, out->addr);
	if (fam == 0)
	{
		snprintf(why, whylen, "Nonstandard IP address: %.*s",
				 (int) (alen > 200 ? 200 : alen), s);
		return false;
	}
	maxbits = (fam == 4) ? 32 : 128;
	if (bits >= maxbits)
	{
		snprintf(why, whylen, "Malformed CIDR, mask bits must be between 0 and %u",
				 maxbits - 1);
		return false;
	}
	out->family = (uint8_t) fam;
	out->bits = (uint8_t) bits;
	for (i = 0; i < 16; i++)
	{
		unsigned	keep;

		if (i * 8 >= bits)
			keep = 0;
		else if (i * 8 + 8 <= bits)
			keep = 8;
		else
			keep = bits - (unsigned) i * 8;
		out->addr[i] &= (uint8_t) (keep == 0 ? 0 : (0xFF << (8 - keep)));
	}
	return true;
}

/* True if the string s is an address inside the block c. */
bool
ebm_cidr_contains(const ebm_cidr *c, const char *s, size_t len)
{
	uint8_t		a[16];
	unsigned	full;
	unsigned	rest;

	if (len == 0 || len > 64 || parse_ip(s, len, a) != c->family)
		return false;
	full = c->bits / 8;
	rest = c->bits % 8;
	if (full && memcmp(a, c->addr, full) != 0)
		return false;
	if (rest && ((a[full] & (0xFF << (8 - rest))) & 0xFF) != c->addr[full])
		return false;
	return true;
}
