/* addr_normalize and addr_domain_normalize on arbitrary bytes: they never crash, a refusal
 * always says why, and what they accept is a fixed point (normalizing it again changes
 * nothing), since senders are compared by their normalized form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"

static void check_domain(const char *in)
{
	char *out = malloc(ADDR_DOMAIN_MAX), *again = malloc(ADDR_DOMAIN_MAX);
	const char *why = NULL;

	if (addr_domain_normalize(in, out, &why) == 0) {
		FUZZ_CHECK(strlen(out) < ADDR_DOMAIN_MAX, "domain too long: %zu", strlen(out));
		why = NULL;
		FUZZ_CHECK(addr_domain_normalize(out, again, &why) == 0,
			   "normalized domain '%s' refused: %s", out, why ? why : "(no reason)");
		FUZZ_CHECK(strcmp(out, again) == 0, "'%s' re-normalizes to '%s'", out, again);
	} else {
		FUZZ_CHECK(why && *why, "domain refused without a reason");
	}
	free(out);
	free(again);
}

static void check_address(const char *in)
{
	char *out = malloc(ADDR_MAX), *again = malloc(ADDR_MAX);
	char *domain = malloc(ADDR_DOMAIN_MAX);
	const char *why = NULL;

	if (addr_normalize(in, out, &why) == 0) {
		FUZZ_CHECK(strlen(out) < ADDR_MAX, "address too long: %zu", strlen(out));
		why = NULL;
		FUZZ_CHECK(addr_normalize(out, again, &why) == 0,
			   "normalized address '%s' refused: %s", out, why ? why : "(no reason)");
		FUZZ_CHECK(strcmp(out, again) == 0, "'%s' re-normalizes to '%s'", out, again);
		/* Its domain part is itself a normalized domain. */
		const char *d = addr_domain(out);
		FUZZ_CHECK(d != out, "normalized address '%s' has no @", out);
		FUZZ_CHECK(addr_domain_normalize(d, domain, &why) == 0 && strcmp(d, domain) == 0,
			   "domain of '%s' is not normalized", out);
	} else {
		FUZZ_CHECK(why && *why, "address refused without a reason");
	}
	free(out);
	free(again);
	free(domain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstring(data, size);
	check_address(in);
	check_domain(in);
	free(in);
	return 0;
}
