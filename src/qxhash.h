/*
 * qxhash.h - QuickXorHash, the one content hash both OneDrive services give.
 *
 * 160-bit state; each input byte is XORed in at a bit position that advances
 * by 11 per byte (wrapping at 160); the 64-bit little-endian length is XORed
 * into the last 8 bytes at the end.  Streaming: init, update..., final.
 *
 * Since 160 * 11 is a multiple of 160, bytes 160 apart land on the same bit
 * position: the context only XOR-folds the input into 160 byte lanes, and
 * final() spreads the lanes over the 160-bit state once.  The fields are
 * private; use the functions.  No allocation, no globals: thread-safe for
 * distinct contexts.
 */
#ifndef ODFS_QXHASH_H
#define ODFS_QXHASH_H

#include <stddef.h>
#include <stdint.h>

#define QXHASH_BYTES 20
#define QXHASH_BASE64_LEN 28   /* without the NUL */
#define QXHASH_LANES 160       /* bytes between two XORs at the same bit */

struct qxhash {
	uint64_t lanes[QXHASH_LANES / 8];  /* byte i of the stream XORed into lane byte i % 160 */
	uint64_t length;                   /* bytes hashed so far */
};

void qxhash_init(struct qxhash *h);
void qxhash_update(struct qxhash *h, const void *data, size_t len);
/* Hash of everything so far; the context is not changed (updates may go on). */
void qxhash_final(struct qxhash *h, uint8_t out[QXHASH_BYTES]);
/* final + base64 (standard alphabet, padded): out must hold QXHASH_BASE64_LEN + 1 bytes. */
void qxhash_final_base64(struct qxhash *h, char out[QXHASH_BASE64_LEN + 1]);
/* Standard padded base64 of 20 raw hash bytes, as Graph's quickXorHash. */
void qxhash_base64(const uint8_t hash[QXHASH_BYTES], char out[QXHASH_BASE64_LEN + 1]);

#endif
