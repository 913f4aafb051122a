/* Address parsing and normalization. A sender is only as safe as the comparison that
 * decides it is "the same" address, so every front end goes through these functions. */
#include "addr.h"

#include <idn2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static bool is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static void lower_ascii(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Letters, digits and inner hyphens, 1 to 63 characters. */
static bool label_ok(const char *l, size_t n)
{
	if (n == 0 || n > 63 || l[0] == '-' || l[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = l[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static int check_labels(const char *d, const char **why)
{
	size_t labels = 0;
	const char *last = d;

	for (const char *p = d;; p++) {
		if (*p != '.' && *p != '\0')
			continue;
		if (!label_ok(last, (size_t)(p - last))) {
			*why = "Each part of the domain must be 1 to 63 letters, digits or inner "
			       "hyphens.";
			return -1;
		}
		labels++;
		if (*p == '\0')
			break;
		last = p + 1;
	}
	if (labels < 2) {
		*why = "The domain needs at least two parts, like example.com.";
		return -1;
	}
	/* A numeric last label means an IP address, which is not a sending domain. */
	if (strspn(last, "0123456789") == strlen(last)) {
		*why = "Use a domain name, not an IP address.";
		return -1;
	}
	return 0;
}

/* True when libidn2 accepts every label of an ASCII domain, A-labels included. */
static bool valid_alabels(const char *domain)
{
	char *alabel = NULL;
	int rc = idn2_lookup_u8((const uint8_t *)domain, (uint8_t **)&alabel, IDN2_NONTRANSITIONAL);
	bool ok = rc == IDN2_OK && alabel && strcmp(alabel, domain) == 0;
	idn2_free(alabel);
	return ok;
}

int addr_domain_normalize(const char *in, char out[ADDR_DOMAIN_MAX], const char **why)
{
	char *alabel = NULL;

	*why = "The domain is not valid.";
	if (in[0] == '\0' || strlen(in) >= ADDR_DOMAIN_MAX * 4)
		return -1;
	if (is_ascii(in)) {
		if (util_copy(out, ADDR_DOMAIN_MAX, in) < 0) {
			*why = "The domain is longer than 253 characters.";
			return -1;
		}
		lower_ascii(out);
		/* An ASCII name can still hold A-labels ("xn--..."): they must decode to a valid
		 * name, or mail software would show something else than what was checked. */
		if (strstr(out, "xn--") && !valid_alabels(out)) {
			*why = "The domain has an xn-- label that is not a valid internationalized "
			       "name.";
			return -1;
		}
	} else {
		if (idn2_lookup_u8((const uint8_t *)in, (uint8_t **)&alabel,
				   IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK) {
			*why = "The internationalized domain name is not valid (IDNA2008).";
			return -1;
		}
		int rc = util_copy(out, ADDR_DOMAIN_MAX, alabel);
		idn2_free(alabel);
		if (rc < 0) {
			*why = "The domain is longer than 253 characters.";
			return -1;
		}
	}
	return check_labels(out, why);
}

static int check_local(const char *l, size_t n, const char **why)
{
	if (n == 0 || n > ADDR_LOCAL_MAX) {
		*why = "The part before @ must be 1 to 64 characters.";
		return -1;
	}
	if (l[0] == '.' || l[n - 1] == '.') {
		*why = "The part before @ may not start or end with a dot.";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (l[i] == '.' && l[i + 1] == '.') {
			*why = "The part before @ may not contain two dots in a row.";
			return -1;
		}
		if (l[i] != '.' && !is_atext((unsigned char)l[i])) {
			*why = "The part before @ may use letters, digits and !#$%&'*+-/=?^_`{|}~ "
			       "only.";
			return -1;
		}
	}
	return 0;
}

int addr_normalize(const char *in, char out[ADDR_MAX], const char **why)
{
	const char *at = strrchr(in, '@');
	char domain[ADDR_DOMAIN_MAX];

	if (!at) {
		*why = "An email address needs an @, like name@example.com.";
		return -1;
	}
	size_t local_len = (size_t)(at - in);
	if (check_local(in, local_len, why) < 0)
		return -1;
	if (addr_domain_normalize(at + 1, domain, why) < 0)
		return -1;
	if (local_len + 1 + strlen(domain) >= ADDR_MAX) {
		*why = "The address is longer than 254 characters.";
		return -1;
	}
	memcpy(out, in, local_len);
	out[local_len] = '\0';
	lower_ascii(out);
	out[local_len] = '@';
	strcpy(out + local_len + 1, domain);
	return 0;
}

const char *addr_domain(const char *normalized)
{
	const char *at = strrchr(normalized, '@');
	return at ? at + 1 : normalized;
}
