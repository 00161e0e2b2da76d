/*
 * fuzz_auth_token.c - auth_parse_token_response() on arbitrary bytes: the
 * body of a 200 from the identity platform's token endpoint.
 *
 * A parsed answer has a non-empty access token, no empty refresh token and
 * a lifetime that the callers can add to the clock without overflowing.
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_tokens t;
	volatile int64_t expires_at;
	int rc;

	rc = auth_parse_token_response((const char *)data, size, &t);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(!t.access && !t.refresh);
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(t.access && *t.access);
	FUZZ_CHECK(!t.refresh || *t.refresh);
	FUZZ_CHECK(t.expires_in >= 0 && t.expires_in <= AUTH_MAX_EXPIRES_IN);
	/* what auth.c does with it (UBSan reports an overflow) */
	expires_at = (int64_t)time(NULL) + t.expires_in;
	(void)expires_at;
	auth_tokens_release(&t);
	FUZZ_CHECK(!t.access && !t.refresh && t.expires_in == 0);
	return 0;
}
