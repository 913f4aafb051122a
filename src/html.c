/* HTML building with escaping by default: html_fmt escapes every string argument, so an
 * address or account name can never become markup. */
#include "html.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void append(struct html *h, const char *s, size_t n)
{
	if (h->len + n + 1 > h->cap) {
		h->cap = (h->len + n + 1) * 2;
		h->buf = xrealloc(h->buf, h->cap);
	}
	memcpy(h->buf + h->len, s, n);
	h->len += n;
	h->buf[h->len] = '\0';
}

void html_raw(struct html *h, const char *text)
{
	append(h, text, strlen(text));
}

void html_text(struct html *h, const char *text)
{
	for (; *text; text++) {
		switch (*text) {
		case '&':
			html_raw(h, "&amp;");
			break;
		case '<':
			html_raw(h, "&lt;");
			break;
		case '>':
			html_raw(h, "&gt;");
			break;
		case '"':
			html_raw(h, "&quot;");
			break;
		case '\'':
			html_raw(h, "&#39;");
			break;
		default:
			append(h, text, 1);
		}
	}
}

void html_fmt(struct html *h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	for (const char *p = fmt; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			html_text(h, va_arg(ap, const char *));
			p++;
		} else if (p[0] == '%' && p[1] == 'd') {
			char n[16];
			snprintf(n, sizeof(n), "%d", va_arg(ap, int));
			html_raw(h, n);
			p++;
		} else {
			append(h, p, 1);
		}
	}
	va_end(ap);
}

char *html_page(const char *title, struct html *body)
{
	struct html page = {0};
	html_fmt(&page,
		 "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
		 "<meta name=\"robots\" content=\"noindex\"><title>%s</title>",
		 title);
	html_raw(&page,
		 "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;"
		 "margin:3em auto;padding:0 1em;color:#1b1f24}h1{font-size:1.4em}"
		 "li{font-family:ui-monospace,monospace}button{font:inherit;padding:.6em 1.2em;"
		 "border:0;border-radius:6px;background:#0b5fff;color:#fff;cursor:pointer}"
		 ".note{color:#57606a}</style></head><body><main>");
	html_raw(&page, body->buf ? body->buf : "");
	html_raw(&page, "</main></body></html>\n");
	free(body->buf);
	body->buf = NULL;
	return page.buf;
}
