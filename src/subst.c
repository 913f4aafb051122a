/* Substitution of a personalization's values into its message: the two tag syntaxes, and the
 * view of one personalization that compose builds its message from and send checks. */
#include "subst.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *subst_syntax_name(enum subst_syntax s)
{
	return s == SUBST_NETCORE ? "netcore" : "literal";
}

enum subst_syntax subst_syntax_of(const cJSON *payload)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, "tag_syntax");
	return cJSON_IsString(v) && strcmp(v->valuestring, "netcore") == 0 ? SUBST_NETCORE
									   : SUBST_LITERAL;
}

/* A personalization's values made ready to apply, once per view: Netcore's names in a hash
 * table; SendGrid's keys, reversed, in an Aho–Corasick automaton. Run over the text from its
 * end, the automaton's state at each position names the longest key that starts there, so
 * substitution costs the text's length plus the keys' and the output's, whatever the number
 * of keys. */
struct node {
	int first, next; /* children, for the breadth-first walk that links the nodes */
	int fail;	 /* the node of the longest proper suffix in the trie */
	int own;	 /* 1 + index of the key that ends here, 0 for none */
	int match;	 /* own, or the fail chain's nearest: the longest key that ends here */
	unsigned char byte;
};

struct subst {
	GHashTable *names; /* Netcore: name → value */
	GArray *nodes;	   /* SendGrid: the trie, root first */
	GHashTable *edges; /* SendGrid: node << 8 | byte → 1 + child */
	GPtrArray *keys;   /* SendGrid: the keys' items, by index */
	enum subst_syntax syntax;
	size_t shortest, longest, longest_value;
};

static struct node *node_at(const struct subst *m, int i)
{
	return &g_array_index(m->nodes, struct node, i);
}

static gpointer edge(int node, unsigned char c)
{
	return GSIZE_TO_POINTER(((gsize)node << 8) | c);
}

static int child(const struct subst *m, int node, unsigned char c)
{
	return GPOINTER_TO_INT(g_hash_table_lookup(m->edges, edge(node, c))) - 1;
}

static int add_child(struct subst *m, int parent, unsigned char c)
{
	int i = (int)m->nodes->len;
	struct node n = {.first = -1, .next = node_at(m, parent)->first, .byte = c};
	g_array_append_val(m->nodes, n);
	node_at(m, parent)->first = i;
	g_hash_table_insert(m->edges, edge(parent, c), GINT_TO_POINTER(i + 1));
	return i;
}

/* The automaton's move on c: to the child, or the fail chain's first node that has one. */
static int step(const struct subst *m, int s, unsigned char c)
{
	int t;
	while ((t = child(m, s, c)) < 0 && s != 0)
		s = node_at(m, s)->fail;
	return t < 0 ? 0 : t;
}

/* The key reversed into the trie; of equal keys the first wins, as it always has. */
static void add_key(struct subst *m, const char *key, int index)
{
	int s = 0;
	for (size_t i = strlen(key); i > 0; i--) {
		int t = child(m, s, (unsigned char)key[i - 1]);
		s = t >= 0 ? t : add_child(m, s, (unsigned char)key[i - 1]);
	}
	if (!node_at(m, s)->own)
		node_at(m, s)->own = index + 1;
}

/* Sets fail and match, parents before children. */
static void link_nodes(struct subst *m)
{
	GQueue queue = G_QUEUE_INIT;
	g_queue_push_tail(&queue, GINT_TO_POINTER(0));
	while (!g_queue_is_empty(&queue)) {
		int u = GPOINTER_TO_INT(g_queue_pop_head(&queue));
		for (int v = node_at(m, u)->first; v >= 0; v = node_at(m, v)->next) {
			struct node *n = node_at(m, v);
			n->fail = u == 0 ? 0 : step(m, node_at(m, u)->fail, n->byte);
			n->match = n->own ? n->own : node_at(m, n->fail)->match;
			g_queue_push_tail(&queue, GINT_TO_POINTER(v));
		}
	}
}

static void literal_build(struct subst *m, const cJSON *subs)
{
	struct node root = {.first = -1, .next = -1};
	const cJSON *v;
	m->nodes = g_array_new(FALSE, FALSE, sizeof(struct node));
	g_array_append_val(m->nodes, root);
	m->edges = g_hash_table_new(g_direct_hash, g_direct_equal);
	m->keys = g_ptr_array_new();
	m->shortest = SIZE_MAX;
	cJSON_ArrayForEach(v, subs)
	{
		size_t n = strlen(v->string);
		if (!cJSON_IsString(v) || n == 0)
			continue;
		add_key(m, v->string, (int)m->keys->len);
		g_ptr_array_add(m->keys, (gpointer)v);
		m->shortest = MIN(m->shortest, n);
		m->longest = MAX(m->longest, n);
		m->longest_value = MAX(m->longest_value, strlen(v->valuestring));
	}
	link_nodes(m);
}

/* Netcore's names; of equal names the first wins. A tag is at least "[%%]". */
static void netcore_build(struct subst *m, const cJSON *subs)
{
	const cJSON *v;
	m->names = g_hash_table_new(g_str_hash, g_str_equal);
	m->shortest = 4;
	cJSON_ArrayForEach(v, subs)
	{
		if (cJSON_IsString(v) && !g_hash_table_contains(m->names, v->string)) {
			g_hash_table_insert(m->names, v->string, v->valuestring);
			m->longest_value = MAX(m->longest_value, strlen(v->valuestring));
		}
	}
}

static struct subst *subst_new(const cJSON *subs, enum subst_syntax syntax)
{
	struct subst *m = xcalloc(1, sizeof(*m));
	m->syntax = syntax;
	if (syntax == SUBST_NETCORE)
		netcore_build(m, subs);
	else
		literal_build(m, subs);
	return m;
}

static void subst_free(struct subst *m)
{
	if (m->names)
		g_hash_table_destroy(m->names);
	if (m->nodes) {
		g_array_free(m->nodes, TRUE);
		g_hash_table_destroy(m->edges);
		g_ptr_array_free(m->keys, TRUE);
	}
	free(m);
}

/* At most what len bytes of text can grow to: every shortest tag replaced by the longest
 * value. */
static size_t growth_bound(const struct subst *m, size_t len)
{
	size_t tags = m->shortest == SIZE_MAX ? 0 : len / m->shortest;
	if (m->longest_value && tags > (SIZE_MAX - len) / m->longest_value)
		return SIZE_MAX;
	return len + tags * m->longest_value;
}

/* Where the result goes: counted always, kept only when buf is set; over once past max. */
struct sink {
	GString *buf;
	size_t len, max;
	bool over;
};

static void put(struct sink *s, const char *p, size_t n)
{
	if (s->over || n > s->max - s->len) {
		s->over = true;
		return;
	}
	s->len += n;
	if (s->buf)
		g_string_append_len(s->buf, p, (gssize)n);
}

/* The value of the attribute named by [name, end) without surrounding whitespace, or NULL;
 * scratch holds the name while it is looked up. */
static const char *netcore_value(const struct subst *m, GString *scratch, const char *name,
				 const char *end)
{
	while (name < end && g_ascii_isspace(*name))
		name++;
	while (end > name && g_ascii_isspace(end[-1]))
		end--;
	g_string_truncate(scratch, 0);
	g_string_append_len(scratch, name, end - name);
	return g_hash_table_lookup(m->names, scratch->str);
}

static void netcore(struct sink *s, const char *text, const struct subst *m)
{
	const char *p = text, *open, *close;
	GString *scratch = g_string_new(NULL);
	while ((open = strstr(p, "[%")) && (close = strstr(open + 2, "%]"))) {
		/* The last opening before the close starts the tag: "[% [%a%]" is text, then a
		 * tag. */
		const char *inner;
		while ((inner = g_strstr_len(open + 2, close - open - 2, "[%")))
			open = inner;
		put(s, p, (size_t)(open - p));
		const char *value = netcore_value(m, scratch, open + 2, close);
		if (value)
			put(s, value, strlen(value));
		p = close + 2;
	}
	put(s, p, strlen(p));
	g_string_free(scratch, TRUE);
}

/* The text is matched a block at a time, so that what is kept per position stays small. */
#define BLOCK 65536

/* best[i - from] = 1 + index of the longest key that starts at i, for i in [from, to). The
 * automaton's state depends on the last m->longest bytes read only, so reading starts that
 * far past to. */
static void longest_keys(const struct subst *m, const char *text, size_t n, size_t from, size_t to,
			 int *best)
{
	int s = 0;
	for (size_t i = MIN(n, to + m->longest); i > to; i--)
		s = step(m, s, (unsigned char)text[i - 1]);
	for (size_t i = to; i > from; i--) {
		s = step(m, s, (unsigned char)text[i - 1]);
		best[i - 1 - from] = node_at(m, s)->match;
	}
}

/* Leftmost first, and the longest key where several start at the same place. */
static void literal(struct sink *s, const char *text, const struct subst *m)
{
	size_t n = strlen(text), p = 0, run = 0;
	int *best = g_new(int, MIN(n, BLOCK) + 1);
	for (size_t from = 0; from < n && !s->over; from += BLOCK) {
		size_t to = MIN(n, from + BLOCK);
		longest_keys(m, text, n, from, to, best);
		while (p < to && !s->over) {
			int k = best[p - from];
			if (!k) {
				p++;
				continue;
			}
			const cJSON *key = g_ptr_array_index(m->keys, k - 1);
			put(s, text + run, p - run);
			put(s, key->valuestring, strlen(key->valuestring));
			p += strlen(key->string);
			run = p;
		}
	}
	put(s, text + run, n - run);
	g_free(best);
}

static int apply(const struct subst *m, const char *text, size_t max, char **out, size_t *len)
{
	struct sink s = {.buf = out ? g_string_new(NULL) : NULL, .max = max};
	if (m->syntax == SUBST_NETCORE)
		netcore(&s, text, m);
	else
		literal(&s, text, m);
	*len = s.len;
	if (out) {
		*out = s.over ? NULL : xstrdup(s.buf->str);
		g_string_free(s.buf, TRUE);
	}
	return s.over ? -1 : 0;
}

int subst_apply(const char *text, const cJSON *subs, enum subst_syntax syntax, size_t max,
		char **out, size_t *len)
{
	struct subst *m = subst_new(subs, syntax);
	int rc = apply(m, text, max, out, len);
	subst_free(m);
	return rc;
}

static const cJSON *personalization(const cJSON *payload, int part)
{
	const cJSON *p = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(payload, "personalizations"), part);
	return cJSON_IsObject(p) ? p : NULL;
}

bool subst_needed(const cJSON *payload, int part)
{
	const cJSON *p = personalization(payload, part);
	const cJSON *subs = cJSON_GetObjectItemCaseSensitive(p, "substitutions");
	/* A Netcore tag without a value still becomes "", so every Netcore message is
	 * substituted. */
	return p &&
	       ((cJSON_IsObject(subs) && subs->child) || subst_syntax_of(payload) == SUBST_NETCORE);
}

/* An item of the view that stands for item of the payload without copying it. */
static cJSON *ref(const cJSON *item)
{
	if (cJSON_IsObject(item))
		return cJSON_CreateObjectReference(item->child);
	if (cJSON_IsArray(item))
		return cJSON_CreateArrayReference(item->child);
	if (cJSON_IsString(item))
		return cJSON_CreateStringReference(item->valuestring);
	return cJSON_Duplicate(item, false);
}

/* An object referencing every item of from but the keys in skip (NULL-terminated). */
static cJSON *ref_object(const cJSON *from, const char *const *skip)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *item;
	cJSON_ArrayForEach(item, from)
	{
		bool skipped = false;
		for (const char *const *k = skip; *k; k++)
			skipped |= strcmp(item->string, *k) == 0;
		if (!skipped)
			cJSON_AddItemToObject(o, item->string, ref(item));
	}
	return o;
}

/* Longer than any header field send.c lets through, so that a subject or name of repeated
 * long values is refused without being built whole. */
#define HEADER_MAX 4096

/* Adds key: text with m's values substituted, at most max bytes. */
static int add_substituted(cJSON *o, const char *key, const char *text, const struct subst *m,
			   size_t max)
{
	char *value;
	size_t len;
	if (apply(m, text, max, &value, &len) < 0)
		return -1;
	cJSON_AddStringToObject(o, key, value);
	free(value);
	return 0;
}

/* Measuring checks the bound arithmetically first, and counts (never builds) only the
 * values that could pass it. */
static int view_content(cJSON *view, const cJSON *content, const struct subst *m, bool measure_only)
{
	static const char *const none[] = {NULL};
	if (measure_only) {
		const cJSON *v;
		size_t len;
		cJSON_ArrayForEach(v, content)
		{
			if (cJSON_IsString(v) &&
			    growth_bound(m, strlen(v->valuestring)) > SUBST_CONTENT_MAX &&
			    apply(m, v->valuestring, SUBST_CONTENT_MAX, NULL, &len) < 0)
				return -1;
		}
		cJSON_AddItemToObject(view, "content", ref_object(content, none));
		return 0;
	}
	cJSON *c = cJSON_AddObjectToObject(view, "content");
	const cJSON *v;
	cJSON_ArrayForEach(v, content)
	{
		if (cJSON_IsString(v) &&
		    add_substituted(c, v->string, v->valuestring, m, SUBST_CONTENT_MAX) < 0)
			return -1;
	}
	return 0;
}

/* A mailbox with its name substituted when m is not NULL; -1 when the name would pass
 * HEADER_MAX. */
static int view_mailbox(cJSON *to, const char *key, const cJSON *box, const struct subst *m)
{
	static const char *const skip[] = {"name", NULL}, *const none[] = {NULL};
	cJSON *o = ref_object(box, m ? skip : none);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(box, "name");
	if (key)
		cJSON_AddItemToObject(to, key, o);
	else
		cJSON_AddItemToArray(to, o);
	if (!m || !cJSON_IsString(name))
		return 0;
	return add_substituted(o, "name", name->valuestring, m, HEADER_MAX);
}

/* The reply-to mailboxes, their names substituted when m is not NULL. */
static int view_reply_to(cJSON *view, const cJSON *payload, const struct subst *m)
{
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(payload, "reply_to");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(payload, "reply_to_list"), *box;
	int rc = 0;
	if (cJSON_IsObject(reply_to))
		rc |= view_mailbox(view, "reply_to", reply_to, m);
	if (!cJSON_IsArray(list))
		return rc;
	cJSON *arr = cJSON_AddArrayToObject(view, "reply_to_list");
	cJSON_ArrayForEach(box, list)
	{
		rc |= view_mailbox(arr, NULL, box, m);
	}
	return rc;
}

cJSON *subst_view(const cJSON *payload, int part, bool measure_only, const char **why)
{
	static const char *const top_skip[] = {"subject",  "content",	    "personalizations",
					       "reply_to", "reply_to_list", NULL};
	static const char *const own_skip[] = {"subject", NULL};
	const cJSON *p = personalization(payload, part);
	struct subst *m = subst_new(cJSON_GetObjectItemCaseSensitive(p, "substitutions"),
				    subst_syntax_of(payload));
	cJSON *view = ref_object(payload, top_skip);

	const cJSON *subject = cJSON_GetObjectItemCaseSensitive(p, "subject");
	if (!cJSON_IsString(subject))
		subject = cJSON_GetObjectItemCaseSensitive(payload, "subject");
	cJSON_AddItemToArray(cJSON_AddArrayToObject(view, "personalizations"),
			     ref_object(p, own_skip));
	*why = NULL;
	if (add_substituted(view, "subject", cJSON_IsString(subject) ? subject->valuestring : "", m,
			    HEADER_MAX) < 0 ||
	    view_reply_to(view, payload, m->syntax == SUBST_LITERAL ? m : NULL) < 0)
		*why = "With its values substituted, the subject or a reply-to name is too long.";
	else if (view_content(view, cJSON_GetObjectItemCaseSensitive(payload, "content"), m,
			      measure_only) < 0)
		*why = "With its values substituted, a content value would pass 10 MiB.";
	subst_free(m);
	if (!*why)
		return view;
	cJSON_Delete(view);
	return NULL;
}
