/*-------------------------------------------------------------------------
 *
 * pathtrie.c
 *	  The field paths of a rule set, as a trie over path segments.
 *
 * Patterns and events both spell a field as a dotted path, and "a.b" as a
 * key names the same field as "b" nested in "a".  Splitting every key on
 * dots and walking one segment at a time makes both spellings meet, and
 * lets the event walk skip at once any subtree no rule looks into.
 * Edges live in one open-addressing hash table keyed by (parent, segment).
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "ebm_internal.h"

typedef struct edge
{
	uint32_t	parent;
	uint32_t	child;			/* EBM_NO_NODE: empty slot */
	uint32_t	seglen;
	size_t		segoff;			/* into the segment arena */
	uint64_t	hash;
} edge;

struct ebm_pathtrie
{
	uint32_t   *path_id;		/* per node: path id or EBM_NO_NODE */
	uint32_t   *parent;			/* per node: parent node (root: itself) */
	uint32_t   *depth;			/* per node: segments from the root */
	uint32_t   *node_of;		/* per path id: its node */
	size_t		node_of_cap;
	uint64_t   *firsts;			/* per node: 256-bit set of its children's
								 * first bytes, to turn most misses away
								 * without hashing */
	uint32_t	nnodes;
	size_t		nodecap;
	edge	   *edges;
	size_t		nedges;
	size_t		edgecap;		/* power of two */
	char	   *segs;
	size_t		segslen;
	size_t		segscap;
	uint32_t	npaths;
};

/* Hash of one edge. */
static inline uint64_t
edge_hash(uint32_t parent, const char *seg, size_t len)
{
	return ebm_hash_mix(ebm_hash_bytes(seg, len, EBM_HASH_SEED ^ parent) + len);
}

/* A trie holding only the root (the empty path). */
ebm_pathtrie *
ebm_pathtrie_new(void)
{
	ebm_pathtrie *t = ebm_calloc(1, sizeof(ebm_pathtrie));
	size_t		i;

	if (t == NULL)
		return NULL;
	t->edgecap = 64;
	t->edges = ebm_malloc(t->edgecap * sizeof(edge));
	if (t->edges == NULL || !ebm_grow((void **) &t->path_id, &t->nodecap, 1, sizeof(uint32_t)) ||
		(t->parent = ebm_malloc(t->nodecap * sizeof(uint32_t))) == NULL ||
		(t->depth = ebm_malloc(t->nodecap * sizeof(uint32_t))) == NULL)
	{
		ebm_pathtrie_free(t);
		return NULL;
	}
	t->firsts = ebm_calloc(t->nodecap, 4 * sizeof(uint64_t));
	if (t->firsts == NULL)
	{
		ebm_pathtrie_free(t);
		return NULL;
	}
	for (i = 0; i < t->edgecap; i++)
		t->edges[i].child = EBM_NO_NODE;
	t->path_id[0] = EBM_NO_NODE;
	t->parent[0] = 0;
	t->depth[0] = 0;
	t->nnodes = 1;
	return t;
}

/* Free a trie. */
void
ebm_pathtrie_free(ebm_pathtrie *t)
{
	if (t == NULL)
		return;
	ebm_free(t->path_id);
	ebm_free(t->parent);
	ebm_free(t->depth);
	ebm_free(t->node_of);
	ebm_free(t->firsts);
	ebm_free(t->edges);
	ebm_free(t->segs);
	ebm_free(t);
}

/* Child of node along segment seg, or EBM_NO_NODE. */
uint32_t
ebm_pathtrie_child(const ebm_pathtrie *t, uint32_t node, const char *seg,
				   size_t len)
{
	unsigned char c0 = len ? (unsigned char) seg[0] : 0;
	uint64_t	h;
	size_t		mask = t->edgecap - 1;
	size_t		i;

	if (!(t->firsts[4 * (size_t) node + c0 / 64] & (UINT64_C(1) << (c0 % 64))))
		return EBM_NO_NODE;
	h = edge_hash(node, seg, len);
	i = (size_t) h & mask;
	while (t->edges[i].child != EBM_NO_NODE)
	{
		const edge *e = &t->edges[i];

		if (e->hash == h && e->parent == node && e->seglen == len &&
			ebm_bytes_equal(t->segs + e->segoff, seg, len))
			return e->child;
		i = (i + 1) & mask;
	}
	return EBM_NO_NODE;
}

/* Double the edge table. */
static bool
rehash(ebm_pathtrie *t)
{
	size_t		ncap = t->edgecap * 2;
	edge	   *ne = ebm_malloc(ncap * sizeof(edge));
	size_t		i;

	if (ne == NULL)
		return false;
	for (i = 0; i < ncap; i++)
		ne[i].child = EBM_NO_NODE;
	for (i = 0; i < t->edgecap; i++)
	{
		size_t		j;

		if (t->edges[i].child == EBM_NO_NODE)
			continue;
		j = (size_t) t->edges[i].hash & (ncap - 1);
		while (ne[j].child != EBM_NO_NODE)
			j = (j + 1) & (ncap - 1);
		ne[j] = t->edges[i];
	}
	ebm_free(t->edges);
	t->edges = ne;
	t->edgecap = ncap;
	return true;
}

/* Child of node along seg, created if missing; EBM_NO_NODE if no memory. */
static uint32_t
child_or_add(ebm_pathtrie *t, uint32_t node, const char *seg, size_t len)
{
	uint32_t	c = ebm_pathtrie_child(t, node, seg, len);
	uint64_t	h;
	size_t		i;

	if (c != EBM_NO_NODE)
		return c;
	if ((t->nedges + 1) * 2 > t->edgecap && !rehash(t))
		return EBM_NO_NODE;
	if (t->nnodes + 1 > t->nodecap)
	{
		size_t		old = t->nodecap;
		size_t		cap = t->nodecap;
		uint64_t   *nf;
		uint32_t   *np;

		if (!ebm_grow((void **) &t->path_id, &cap, t->nnodes + 1, sizeof(uint32_t)))
			return EBM_NO_NODE;
		np = ebm_realloc(t->parent, cap * sizeof(uint32_t));
		if (np == NULL)
			return EBM_NO_NODE;
		t->parent = np;
		np = ebm_realloc(t->depth, cap * sizeof(uint32_t));
		if (np == NULL)
			return EBM_NO_NODE;
		t->depth = np;
		nf = ebm_realloc(t->firsts, cap * 4 * sizeof(uint64_t));
		if (nf == NULL)
			return EBM_NO_NODE;
		memset(nf + 4 * old, 0, (cap - old) * 4 * sizeof(uint64_t));
		t->firsts = nf;
		t->nodecap = cap;
	}
	if (!ebm_grow((void **) &t->segs, &t->segscap, t->segslen + len + 1, 1))
		return EBM_NO_NODE;
	h = edge_hash(node, seg, len);
	i = (size_t) h & (t->edgecap - 1);
	while (t->edges[i].child != EBM_NO_NODE)
		i = (i + 1) & (t->edgecap - 1);
	memcpy(t->segs + t->segslen, seg, len);
	t->edges[i].parent = node;
	t->edges[i].child = t->nnodes;
	t->edges[i].seglen = (uint32_t) len;
	t->edges[i].segoff = t->segslen;
	t->edges[i].hash = h;
	t->segslen += len;
	t->nedges++;
	{
		unsigned char c0 = len ? (unsigned char) seg[0] : 0;

		t->firsts[4 * (size_t) node + c0 / 64] |= UINT64_C(1) << (c0 % 64);
	}
	t->path_id[t->nnodes] = EBM_NO_NODE;
	t->parent[t->nnodes] = node;
	t->depth[t->nnodes] = t->depth[node] + 1;
	return t->nnodes++;
}

/* Intern a dotted path; *id is its dense path id. */
bool
ebm_pathtrie_add(ebm_pathtrie *t, const char *path, size_t len, uint32_t *id)
{
	uint32_t	node = 0;
	size_t		start = 0;
	size_t		i;

	for (i = 0; i <= len; i++)
	{
		if (i == len || path[i] == '.')
		{
			node = child_or_add(t, node, path + start, i - start);
			if (node == EBM_NO_NODE)
				return false;
			start = i + 1;
		}
	}
	if (t->path_id[node] == EBM_NO_NODE)
	{
		if (!ebm_reserve((void **) &t->node_of, &t->node_of_cap, t->npaths + 1,
						 sizeof(uint32_t)))
			return false;
		t->node_of[t->npaths] = node;
		t->path_id[node] = t->npaths++;
	}
	*id = t->path_id[node];
	return true;
}

/* Path id of a node, or EBM_NO_NODE if no rule names that path. */
uint32_t
ebm_pathtrie_path_id(const ebm_pathtrie *t, uint32_t node)
{
	return t->path_id[node];
}

/*
 * The per-node sets of first bytes of child segments (4 words per node),
 * so a caller can turn a key away before even looking for its dots.
 */
const uint64_t *
ebm_pathtrie_firsts(const ebm_pathtrie *t)
{
	return t->firsts;
}

/* Number of distinct paths. */
uint32_t
ebm_pathtrie_npaths(const ebm_pathtrie *t)
{
	return t->npaths;
}

/* The node of a path id. */
uint32_t
ebm_pathtrie_node_of(const ebm_pathtrie *t, uint32_t path_id)
{
	return t->node_of[path_id];
}

/* Number of nodes (the root included). */
uint32_t
ebm_pathtrie_nnodes(const ebm_pathtrie *t)
{
	return t->nnodes;
}

/*
 * Is node a an ancestor of node d, or d itself?  Walks up from d, one step
 * per segment: at most the length of a pattern's path.
 */
bool
ebm_pathtrie_covers(const ebm_pathtrie *t, uint32_t a, uint32_t d)
{
	while (t->depth[d] > t->depth[a])
		d = t->parent[d];
	return d == a;
}
