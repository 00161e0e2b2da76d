/*
 * qxhash.c - QuickXorHash (OneDrive's content hash), fast enough for whole files.
 *
 * Reference: od-docs docs/code-snippets/quickxorhash.md.  Byte i of the
 * input is XORed into the 160-bit state at bit (11 * i) mod 160; because
 * 11 * 160 is a multiple of 160, bytes 160 apart share a bit position.  So
 * update() only XORs the input into 160 byte lanes (twenty 64-bit words
 * per 160-byte block, which compilers vectorise), and final() rotates each
 * lane into place once.  That is memory speed rather than a shift per byte.
 */
#include <string.h>
#include "qxhash.h"

#define QXHASH_SHIFT 11
#define QXHASH_BITS 160
#define QXHASH_WORDS (QXHASH_LANES / 8)

void qxhash_init(struct qxhash *h)
{
	memset(h, 0, sizeof(*h));
}

/* XOR one whole 160-byte block into the lanes; memcpy keeps unaligned loads legal. */
static inline void xor_block(uint64_t *lanes, const unsigned char *p)
{
	uint64_t w[QXHASH_WORDS];

	memcpy(w, p, sizeof(w));
	for (int i = 0; i < QXHASH_WORDS; i++)
		lanes[i] ^= w[i];
}

void qxhash_update(struct qxhash *h, const void *data, size_t len)
{
	const unsigned char *p = data;
	unsigned char *lane = (unsigned char *)h->lanes;
	size_t pos = h->length % QXHASH_LANES;

	h->length += len;

	/* Finish a block started by an earlier call. */
	if (pos) {
		while (len && pos < QXHASH_LANES) {
			lane[pos++] ^= *p++;
			len--;
		}
		if (pos < QXHASH_LANES)
			return;
	}
	for (; len >= QXHASH_LANES; len -= QXHASH_LANES, p += QXHASH_LANES)
		xor_block(h->lanes, p);
	for (pos = 0; pos < len; pos++)
		lane[pos] ^= p[pos];
}

void qxhash_final(struct qxhash *h, uint8_t out[QXHASH_BYTES])
{
	const unsigned char *lane = (const unsigned char *)h->lanes;
	uint64_t length = h->length;

	memset(out, 0, QXHASH_BYTES);
	for (unsigned i = 0; i < QXHASH_LANES; i++) {
		unsigned bit = (i * QXHASH_SHIFT) % QXHASH_BITS;
		unsigned byte = bit / 8, off = bit % 8;

		if (!lane[i])
			continue;
		out[byte] ^= (uint8_t)(lane[i] << off);
		if (off)  /* the state is circular: bits past 159 wrap to bit 0 */
			out[(byte + 1) % QXHASH_BYTES] ^= (uint8_t)(lane[i] >> (8 - off));
	}
	for (unsigned i = 0; i < 8; i++)
		out[QXHASH_BYTES - 8 + i] ^= (uint8_t)(length >> (8 * i));
}

void qxhash_base64(const uint8_t hash[QXHASH_BYTES], char out[QXHASH_BASE64_LEN + 1])
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < QXHASH_BYTES; i += 3) {
		size_t left = QXHASH_BYTES - i;
		uint32_t v = (uint32_t)hash[i] << 16;

		if (left > 1)
			v |= (uint32_t)hash[i + 1] << 8;
		if (left > 2)
			v |= hash[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = left > 1 ? alphabet[(v >> 6) & 63] : '=';
		out[o++] = left > 2 ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
}

void qxhash_final_base64(struct qxhash *h, char out[QXHASH_BASE64_LEN + 1])
{
	uint8_t raw[QXHASH_BYTES];

	qxhash_final(h, raw);
	qxhash_base64(raw, out);
}
