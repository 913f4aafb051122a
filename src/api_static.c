/* The panel's files: GET / is [server] web_root/index.html, GET /NAME a file beside it.
 * Names are one path segment of safe characters, so nothing outside web_root is reachable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "util.h"

#define STATIC_MAX (4 * 1024 * 1024)

static const struct {
	const char *ext, *type;
} types[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".ico", "image/x-icon"},
	{".json", "application/json"},
	{".txt", "text/plain; charset=utf-8"},
};

static const char *type_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < ARRAY_LEN(types); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

static bool safe_name(const char *name)
{
	if (!*name || name[0] == '.' || strlen(name) > 100)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       strlen(name);
}

/* Reads a regular file of at most STATIC_MAX bytes; NULL otherwise. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	char *buf = NULL;
	if (!f)
		return NULL;
	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size <= STATIC_MAX) {
		buf = xmalloc((size_t)sb.st_size + 1);
		*len = fread(buf, 1, (size_t)sb.st_size, f);
		buf[*len] = '\0';
	}
	fclose(f);
	return buf;
}

enum err api_static(struct api_call *c)
{
	const char *name = c->param ? c->param : "index.html";
	char path[1300];
	const char *type = type_of(name);

	if (!safe_name(name) || !type)
		return ERR_NOT_FOUND;
	snprintf(path, sizeof(path), "%s/%s", c->ctx->cfg->web_root, name);
	c->reply_body = read_file(path, &c->reply_len);
	if (!c->reply_body)
		return ERR_NOT_FOUND;
	c->reply_type = type;
	return ERR_OK;
}
