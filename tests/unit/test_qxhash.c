/*
 * test_qxhash.c - QuickXorHash against published vectors and a slow reference.
 *
 * The published vectors come from rclone's quickxorhash_test.go (inputs and
 * outputs base64).  The reference below flips one bit at a time, straight
 * from the definition, so the fast lane-folding code is checked against an
 * independent implementation for many lengths and random chunkings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qxhash.h"
#include "unit.h"

/* Definition: bit b of byte i goes to state bit (11 * i + b) mod 160; the
 * 64-bit little-endian length is XORed into bytes 12..19. */
static void slow_qxhash(const uint8_t *data, size_t len, uint8_t out[QXHASH_BYTES])
{
	uint8_t bits[160] = { 0 };

	for (size_t i = 0; i < len; i++)
		for (unsigned b = 0; b < 8; b++)
			if (data[i] >> b & 1)
				bits[(11 * (uint64_t)i + b) % 160] ^= 1;
	memset(out, 0, QXHASH_BYTES);
	for (unsigned k = 0; k < 160; k++)
		out[k / 8] |= (uint8_t)(bits[k] << (k % 8));
	for (unsigned k = 0; k < 8; k++)
		out[12 + k] ^= (uint8_t)((uint64_t)len >> (8 * k));
}

/* Decode standard base64, skipping newlines; returns the byte count. */
static size_t b64decode(const char *in, uint8_t *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t acc = 0;
	int nbits = 0;
	size_t n = 0;

	for (; *in && *in != '='; in++) {
		const char *c = strchr(alphabet, *in);

		if (*in == '\n' || !c)
			continue;
		acc = acc << 6 | (uint32_t)(c - alphabet);
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			out[n++] = (uint8_t)(acc >> nbits);
		}
	}
	return n;
}

static void hash_b64(const uint8_t *data, size_t len, char out[QXHASH_BASE64_LEN + 1])
{
	struct qxhash h;

	qxhash_init(&h);
	qxhash_update(&h, data, len);
	qxhash_final_base64(&h, out);
}

static void test_empty(void)
{
	char b64[QXHASH_BASE64_LEN + 1];
	uint8_t raw[QXHASH_BYTES];
	struct qxhash h;

	hash_b64(NULL, 0, b64);
	CHECK_STR(b64, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	CHECK_INT(strlen(b64), QXHASH_BASE64_LEN);
	qxhash_init(&h);
	qxhash_update(&h, "", 0);
	qxhash_final(&h, raw);
	for (int i = 0; i < QXHASH_BYTES; i++)
		CHECK_INT(raw[i], 0);
}

/* rclone backend/onedrive/quickxorhash/quickxorhash_test.go */
static const struct { size_t size; const char *in, *out; } published[] = {
	{ 1, "Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA=" },
	{ 2, "tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA=" },
	{ 3, "0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA=" },
	{ 4, "jRRDVA==", "jaDAEKgAAAAAAAAABAAAAAAAAAA=" },
	{ 5, "eAV52qE=", "eChAHrQRCgAAAAAABQAAAAAAAAA=" },
	{ 8, "/aNzzCFPS/A=", "/RjFHJgRgicsAR4ACAAAAAAAAAA=" },
	{ 13, "vPgoDjOfO6fm71RxLw==", "vMAHChwwg0/s4BTmdQcV4vACAAA=" },
	{ 15, "gQaybEqS/4UlDc8e4IJm", "gDCALNigBEn8oxAlZ8AzPAAOQZg=" },
	{ 16, "2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg=" },
	{ 20, "T6LYJIfDh81JrAK309H2JMJTXis=", "zBTHrspn3mEcohlJdIUAbjGNaNg=" },
	{ 32, "NbYXsp5/K6mR+NmHwExjvWeWDJFnXTKWVlzYHoesp2E=", "wjuAuWDiq04qDt1R8hHWDDcwVoQ=" },
	{ 64, "Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+c\n"
	      "bvwfdWL8aQ==", "n1anP5NfvD4XDYWIeRPW3ZkPv1Y=" },
	{ 222, "PfxMcUd0vIW6VbHG/uj/Y0W6qEoKmyBD0nYebEKazKaKG+UaDqBEcmQjbfQeVnVLuodMoPp7P7TR\n"
	       "1htX5n2VnkHh22xDyoJ8C/ZQKiSNqQfXvh83judf4RVr9exJCud8Uvgip6aVZTaPrJHVjQhMCp/d\n"
	       "EnGvqg0oN5OVkM2qqAXvA0teKUDhgNM71sDBVBCGXxNOR2bpbD1iM4dnuT0ey4L+loXEHTL0fqMe\n"
	       "UcEi2asgImnlNakwenDzz0x57aBwyq3AspCFGB1ncX4yYCr/OaCcS5OKi/00WH+wNQU3",
	  "QX/YEpG0gDsmhEpCdWhsxDzsfVE=" },
	{ 256, "qwGf2ESubE5jOUHHyc94ORczFYYbc2OmEzo+hBIyzJiNwAzC8PvJqtTzwkWkSslgHFGWQZR2BV5+\n"
	       "uYTrYT7HVwRM40vqfj0dBgeDENyTenIOL1LHkjtDKoXEnQ0mXAHoJ8PjbNC93zi5TovVRXTNzfGE\n"
	       "s5dpWVqxUzb5lc7dwkyvOluBw482mQ4xrzYyIY1t+//OrNi1ObGXuUw2jBQOFfJVj2Y6BOyYmfB1\n"
	       "y36eBxi3zxeG5d5NYjm2GSh6e08QMAwu3zrINcqIzLOuNIiGXBtl7DjKt7b5wqi4oFiRpZsCyx2s\n"
	       "mhSrdrtK/CkdU6nDN+34vSR/M8rZpWQdBE7a8g==", "WYT9JY3JIo/pEBp+tIM6Gt2nyTM=" },
};

static void test_published(void)
{
	for (size_t i = 0; i < sizeof(published) / sizeof(published[0]); i++) {
		uint8_t in[512], slow[QXHASH_BYTES];
		char got[QXHASH_BASE64_LEN + 1], ref[QXHASH_BASE64_LEN + 1];
		size_t n = b64decode(published[i].in, in);

		CHECK_INT(n, published[i].size);
		hash_b64(in, n, got);
		CHECK_STR(got, published[i].out);
		slow_qxhash(in, n, slow);
		qxhash_base64(slow, ref);
		CHECK_STR(ref, published[i].out);
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Every length up to a few blocks, plus some large ones, fast vs slow. */
static void test_against_reference(void)
{
	size_t max = 5000;
	uint8_t *buf = malloc(max);
	static const size_t lens[] = { 159, 160, 161, 319, 320, 321, 1000, 4096, 4999, 5000 };

	CHECK(buf != NULL);
	if (!buf)
		return;
	for (size_t i = 0; i < max; i++)
		buf[i] = (uint8_t)rng();
	for (size_t len = 0; len <= 480; len++) {
		uint8_t fast[QXHASH_BYTES], slow[QXHASH_BYTES];
		struct qxhash h;

		qxhash_init(&h);
		qxhash_update(&h, buf, len);
		qxhash_final(&h, fast);
		slow_qxhash(buf, len, slow);
		if (memcmp(fast, slow, QXHASH_BYTES) != 0) {
			fprintf(stderr, "mismatch at length %zu\n", len);
			CHECK(0);
			break;
		}
	}
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t fast[QXHASH_BYTES], slow[QXHASH_BYTES];
		struct qxhash h;

		qxhash_init(&h);
		qxhash_update(&h, buf + 1, lens[i] - 1);  /* unaligned start */
		qxhash_final(&h, fast);
		slow_qxhash(buf + 1, lens[i] - 1, slow);
		CHECK(memcmp(fast, slow, QXHASH_BYTES) == 0);
	}
	/* All 0xff: every lane non-zero, exercises the wrap past bit 159. */
	memset(buf, 0xff, max);
	for (size_t len = 150; len <= 170; len++) {
		uint8_t fast[QXHASH_BYTES], slow[QXHASH_BYTES];
		struct qxhash h;

		qxhash_init(&h);
		qxhash_update(&h, buf, len);
		qxhash_final(&h, fast);
		slow_qxhash(buf, len, slow);
		CHECK(memcmp(fast, slow, QXHASH_BYTES) == 0);
	}
	free(buf);
}

/* Feeding random pieces gives the same hash as one update. */
static void test_chunking(void)
{
	size_t len = 100000;
	uint8_t *buf = malloc(len);

	CHECK(buf != NULL);
	if (!buf)
		return;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)rng();
	for (int round = 0; round < 50; round++) {
		char whole[QXHASH_BASE64_LEN + 1], pieces[QXHASH_BASE64_LEN + 1];
		size_t n = len - (size_t)(rng() % 1000), off = 0;
		struct qxhash h;

		hash_b64(buf, n, whole);
		qxhash_init(&h);
		while (off < n) {
			size_t step = (size_t)(rng() % (round % 2 ? 7 : 700));

			if (step > n - off)
				step = n - off;
			qxhash_update(&h, buf + off, step);
			off += step;
		}
		qxhash_final_base64(&h, pieces);
		CHECK_STR(pieces, whole);
		/* final does not disturb the context */
		qxhash_final_base64(&h, pieces);
		CHECK_STR(pieces, whole);
	}
	free(buf);
}

/* Not a pass/fail check (sanitizers slow it down): prints the rate. */
static void test_speed(void)
{
	size_t len = 64 << 20;
	uint8_t *buf = calloc(1, len);
	struct timespec t0, t1;
	char b64[QXHASH_BASE64_LEN + 1];
	struct qxhash h;
	double secs;

	CHECK(buf != NULL);
	if (!buf)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	qxhash_init(&h);
	for (int i = 0; i < 4; i++)
		qxhash_update(&h, buf, len);
	qxhash_final_base64(&h, b64);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("qxhash: %.0f MB/s\n", 4.0 * (double)len / 1e6 / (secs > 0 ? secs : 1e-9));
	free(buf);
}

int main(void)
{
	RUN(test_empty);
	RUN(test_published);
	RUN(test_against_reference);
	RUN(test_chunking);
	RUN(test_speed);
	return unit_report("qxhash");
}
