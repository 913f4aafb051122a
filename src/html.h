/* Small HTML pages (the verify pages, the verification email's HTML part), with every
 * value escaped. Pure. */
#ifndef POSTERN_HTML_H
#define POSTERN_HTML_H

#include <stddef.h>

struct html {
	char *buf;
	size_t len, cap;
};

/* Appends text as it is (markup written by Postern itself). */
void html_raw(struct html *h, const char *text);
/* Appends text escaped for element content and attribute values. */
void html_text(struct html *h, const char *text);
/* Appends a printf-formatted string whose %s arguments are escaped. Only %s and %d. */
void html_fmt(struct html *h, const char *fmt, ...);
/* Wraps body in a complete page with title; returns it (malloc'd) and frees body. */
char *html_page(const char *title, struct html *body);

#endif
