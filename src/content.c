/*
 * content.c - the sparse on-disk content cache behind read(), which
 * doubles as the staging area of local changes (content_write.c).
 *
 * DESIGN
 * Every file that has been read or written has a sparse data file
 * content/<sha1(id)> as long as the item, and a row in content/content.db
 * (content_index.c) holding the version tag (cTag, else eTag), the size,
 * the byte ranges present as text ("0-65536 131072-262144") and when it was
 * last used.  A clean row whose tag or size differs from the item being
 * opened is stale: its bytes are dropped and the range list starts empty.
 * A data file that does not exist yet is an empty spare renamed to its
 * name when one is ready (content_spare.c): creating a file can cost more
 * than the rest of a FUSE create.
 *
 * While a file is open its state lives in memory (struct content_item),
 * shared by every handle on it.  A read first makes sure its own bytes are
 * present: the missing parts not already being fetched by someone else are
 * marked busy, downloaded with one ranged GET each, written with pwrite and
 * recorded as they arrive (every 64 KiB), so a reader waiting on another
 * thread's download wakes as soon as its bytes are on disk, not when the
 * whole window is done.  Then pread answers.  (content_fetch.c)
 *
 * Readahead: the first read of a handle, and any read after a seek, fetches
 * what was asked rounded to 64 KiB blocks and nothing more (a thumbnailer
 * touching the heads of many files moves little more than it asked for;
 * the kernel's own small readahead covers short sequential runs).  While
 * reads stay sequential the window doubles from 128 KiB up to
 * cfg->readahead_max, and once 256 KiB were read in a row a stream takes
 * over: one GET from the first missing byte to the end of the file, run by
 * a small fixed pool of workers (a FIFO, the one mutex, a condvar), written
 * to the sparse file as it arrives (in pieces of 256 KiB: the page cache
 * charges per write) and never more than a window ahead of the reader (TCP
 * holds the rest back).  A single request pays the network latency once,
 * which is what lets a cold sequential read keep up with a plain download.
 * A first read of 256 KiB or more counts as such a run already: the kernel
 * sends one that long only to a reader that announced sequential reads
 * (cat and cp do, with fadvise), so their stream starts with the first
 * read.  When a worker is free the stream starts at the read itself, which
 * waits for it rather than fetching beside it.  The stream stops when the
 * last handle closes, when nobody reads on for a while, or when it runs
 * into bytes that are already there.  Items being written do not stream.
 *
 * Local changes (content_write.c): written bytes count as present, so reads
 * see them at once and a write into a large remote file needs no download
 * first.  Bytes at and beyond fetch_limit (the remote size, lowered by
 * truncates) are local: written, or zeros from a truncate up, always
 * present.  Such an item is dirty in the index (with its local size and a
 * change count) until its upload lands: never evicted, never dropped for a
 * new cTag.  The item's io mutex keeps fetched bytes off written ones.
 *
 * Eviction: cc->total counts the bytes present in all files of the index;
 * beyond cfg->content_cache_max the least recently used clean files that
 * are not open are deleted until 90 % of the limit is left.
 *
 * One lock (cc->lock) guards everything below cc, including the SQLite
 * connection; it is never held across a network call.  The per-item io
 * mutex is taken before it, and only around writes to the data file.
 */
#define _GNU_SOURCE     /* asprintf */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cache.h"
#include "config.h"
#include "content_internal.h"
#include "log.h"

#define FIRST_WINDOW    (128 * 1024)       /* first sequential readahead window */
#define BIG_FIRST_READ  (256 * 1024)       /* a first read this long starts a sequential run */
#define URL_MAX_AGE     300                /* seconds a download URL is trusted */

/* ---- items ------------------------------------------------------------ */

int content_key_of(const char *id, char key[CONTENT_KEY_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (!EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -EIO;
	for (i = 0; i < mdlen; i++)
		snprintf(key + 2 * i, 3, "%02x", md[i]);
	return 0;
}

void content_path_of(const struct content_cache *cc, const char *key, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", cc->dir, key);
}

uint32_t content_id_hash(const char *id)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

struct content_item *content_item_find(struct content_cache *cc, const char *id)
{
	struct content_item *it;

	for (it = cc->items; it; it = it->next)
		if (strcmp(it->id, id) == 0)
			return it;
	return NULL;
}

int content_item_add_present(struct content_cache *cc, struct content_item *it, int64_t start,
			     int64_t end)
{
	int64_t before = extent_set_bytes(&it->have);

	if (extent_set_add(&it->have, start, end))
		return -ENOMEM;
	if (!it->detached)
		cc->total += extent_set_bytes(&it->have) - before;
	return 0;
}

int content_item_drop_present(struct content_cache *cc, struct content_item *it, int64_t start,
			      int64_t end)
{
	int64_t before = extent_set_bytes(&it->have);

	if (extent_set_remove(&it->have, start, end))
		return -ENOMEM;
	if (!it->detached)
		cc->total += extent_set_bytes(&it->have) - before;
	return 0;
}

static void item_unlink(struct content_cache *cc, struct content_item *it)
{
	struct content_item **pp;

	for (pp = &cc->items; *pp; pp = &(*pp)->next) {
		if (*pp == it) {
			*pp = it->next;
			break;
		}
	}
	it->next = NULL;
}

/* Take it out of the index: its bytes no longer count and its file goes. */
void content_item_detach(struct content_cache *cc, struct content_item *it)
{
	char path[4096];

	if (it->detached)
		return;
	item_unlink(cc, it);
	it->detached = 1;
	cc->total -= extent_set_bytes(&it->have);
	content_path_of(cc, it->key, path, sizeof(path));
	unlink(path);   /* open handles keep reading the old bytes through it->fd */
	content_index_delete(cc, it->id);
}

static void item_free(struct content_item *it)
{
	if (it->fd >= 0)
		close(it->fd);
	pthread_mutex_destroy(&it->io);
	extent_set_release(&it->have);
	extent_set_release(&it->busy);
	free(it->url);
	free(it->tag);
	free(it->name);
	free(it->id);
	free(it);
}

/* Drop a reference; the last one writes the index and frees. */
void content_item_unref(struct content_cache *cc, struct content_item *it)
{
	if (--it->refs)
		return;
	if (!it->detached) {
		if (it->unsaved)
			content_index_save(cc, it, 0);
		item_unlink(cc, it);
	}
	item_free(it);
}

void content_drop_stored(struct content_cache *cc, const char *id)
{
	struct content_row row;
	char key[CONTENT_KEY_LEN + 1], path[4096];

	if (content_key_of(id, key))
		return;
	content_path_of(cc, key, path, sizeof(path));
	if (content_index_load(cc, id, &row) == 0) {
		if (unlink(path) == 0 || errno == ENOENT) {
			cc->total -= row.bytes;
			content_index_delete(cc, id);
		}
		content_row_release(&row);
	} else {
		unlink(path);   /* a file without a row is a leftover */
	}
}

int content_item_rename(struct content_cache *cc, struct content_item *it, const char *new_id)
{
	char key[CONTENT_KEY_LEN + 1], from[4096], to[4096], *id;
	struct content_item *other;
	int rc;

	if (strcmp(it->id, new_id) == 0)
		return 0;
	rc = content_key_of(new_id, key);
	if (rc)
		return rc;
	id = strdup(new_id);
	if (!id)
		return -ENOMEM;
	/* Whatever new_id had cached is an older version of what we hold. */
	other = content_item_find(cc, new_id);
	if (other)
		content_item_detach(cc, other);
	else
		content_drop_stored(cc, new_id);
	if (!it->detached) {
		content_path_of(cc, it->key, from, sizeof(from));
		content_path_of(cc, key, to, sizeof(to));
		if (rename(from, to)) {
			rc = -errno;
			log_warn("cannot rename the cache file '%s'", from);
			free(id);
			return rc;
		}
		rc = content_index_rename(cc, it->id, new_id);
		if (rc)
			it->unsaved = 1;    /* the next save writes the row under the new id */
	}
	free(it->id);
	it->id = id;
	memcpy(it->key, key, sizeof(key));
	return 0;
}

/*
 * Open (creating if needed) the data file; *created says whether it is new.
 * A new one is a spare renamed when one is ready (content_spare.c).  Lock held.
 */
static int open_data_file(struct content_cache *cc, const char *path, int *created)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	*created = 0;
	if (fd >= 0 || errno != ENOENT)
		return fd < 0 ? -errno : fd;
	if (content_spare_take(cc, path) == 0)
		fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	*created = fd >= 0;
	return fd < 0 ? -errno : fd;
}

/*
 * Take over a row: a dirty one whatever the item says (local changes win),
 * a clean one when tag (NULL: any) and size match and the file agrees.
 * 1 if kept, 0 if not.  Lock held.
 */
static int item_adopt_row(struct content_cache *cc, struct content_item *it,
			  const struct content_row *row, const char *tag, int64_t size)
{
	struct stat st;
	char *t;

	if (row->dirty) {
		if (row->local_size < 0 || extent_set_parse(&it->have, row->ranges, row->local_size)) {
			/* The record is damaged: the local bytes are all we have. */
			log_warnx("cache record of item '%s' is damaged; keeping its local bytes",
				  it->id);
			extent_set_clear(&it->have);
			if (row->local_size > 0 && extent_set_add(&it->have, 0, row->local_size))
				return -ENOMEM;
		}
		if (fstat(it->fd, &st) || st.st_size != row->local_size) {
			/* A crash between a write and its record: the record wins. */
			if (ftruncate(it->fd, row->local_size > 0 ? row->local_size : 0))
				return -errno;
		}
		it->local = 1;
		it->generation = row->generation;
		it->size = row->local_size > 0 ? row->local_size : 0;
		it->remote_size = row->size;
	} else {
		if (tag && (!*tag || strcmp(row->tag, tag) != 0 || row->size != size))
			return 0;
		if (fstat(it->fd, &st) || st.st_size != row->size ||
		    extent_set_parse(&it->have, row->ranges, row->size))
			return 0;
		it->size = it->remote_size = row->size;
	}
	t = strdup(row->tag);
	if (!t)
		return -ENOMEM;
	free(it->tag);
	it->tag = t;
	return 1;
}

/*
 * Build the in-memory state of id from its row and data file, starting
 * afresh with tag and size when the row is missing or stale.  Lock held.
 */
static int item_load(struct content_cache *cc, const char *id, const char *tag, int64_t size,
		     struct content_item **out)
{
	struct content_row row;
	struct content_item *it;
	char path[4096];
	int keep = 0, rc, have_row;

	rc = content_index_load(cc, id, &row);
	if (rc && rc != -ENOENT && rc != -EIO)
		return rc;
	have_row = rc == 0;
	if (!have_row && !tag)
		return -ENOENT;
	it = calloc(1, sizeof(*it));
	if (!it) {
		rc = -ENOMEM;
		goto out_free_row;
	}
	it->fd = -1;
	pthread_mutex_init(&it->io, NULL);
	it->id = strdup(id);
	it->tag = strdup(tag ? tag : "");
	if (!it->id || !it->tag) {
		rc = -ENOMEM;
		goto out_free_item;
	}
	rc = content_key_of(it->id, it->key);
	if (rc)
		goto out_free_item;
	content_path_of(cc, it->key, path, sizeof(path));
	it->fd = open_data_file(cc, path, &it->new_file);
	if (it->fd < 0) {
		rc = it->fd;
		log_warn("cannot open the cache file '%s'", path);
		goto out_free_item;
	}

	if (have_row) {
		keep = item_adopt_row(cc, it, &row, tag, size);
		if (keep < 0) {
			rc = keep;
			goto out_free_item;
		}
		if (!keep && !tag) {
			rc = -ENOENT;   /* a row we cannot trust for staging */
			goto out_free_item;
		}
		if (!keep)
			cc->total -= row.bytes;
		else
			cc->total += extent_set_bytes(&it->have) - row.bytes;
	}
	if (!keep) {
		/* Punch out whatever an older version left, then size it sparse. */
		extent_set_clear(&it->have);
		it->size = it->remote_size = size;
		/* a file this open created is empty already */
		if ((!it->new_file || it->size) && (ftruncate(it->fd, 0) || ftruncate(it->fd, it->size))) {
			rc = -errno;
			log_warn("cannot size the cache file '%s'", path);
			goto out_free_item;
		}
	}
	it->fetch_limit = it->remote_size < it->size ? it->remote_size : it->size;
	/*
	 * Stamps used_at, records the new tag.  A file just created here
	 * (no row, no tag) is recorded by its first flush, or when let go.
	 */
	if (have_row || !it->new_file || *it->tag)
		content_index_save(cc, it, 0);
	else
		it->unsaved = 1;
	*out = it;
	rc = 0;
	goto out_free_row;

out_free_item:
	item_free(it);
out_free_row:
	if (have_row)
		content_row_release(&row);
	return rc;
}

int content_item_get(struct content_cache *cc, const char *id, const char *tag, int64_t size,
		     struct content_item **out)
{
	struct content_item *it = content_item_find(cc, id);
	int rc;

	if (it) {
		if (!tag || it->local || it->writers ||
		    (*tag && strcmp(it->tag, tag) == 0 && it->size == size)) {
			*out = it;
			return 0;
		}
		/* A new version: older handles keep the old bytes, we start afresh. */
		content_item_detach(cc, it);
	}
	rc = item_load(cc, id, tag, size, &it);
	if (rc)
		return rc;
	it->next = cc->items;
	cc->items = it;
	*out = it;
	return 0;
}

/* ---- download URLs from listings -------------------------------------- */

static struct content_url_hint *hint_slot(struct content_cache *cc, const char *id)
{
	return &cc->hints[content_id_hash(id) % CONTENT_URL_SLOTS];
}

static void hint_clear(struct content_url_hint *h)
{
	free(h->id);
	free(h->url);
	h->id = h->url = NULL;
}

/* A fresh hint for id (malloc'd, *at when it was seen) or NULL.  Lock held. */
static char *hint_take(struct content_cache *cc, const char *id, time_t *at)
{
	struct content_url_hint *h = hint_slot(cc, id);
	char *url = NULL;

	if (h->id && strcmp(h->id, id) == 0) {
		if (time(NULL) - h->at < URL_MAX_AGE) {
			url = h->url;
			*at = h->at;
			h->url = NULL;
		}
		hint_clear(h);
	}
	return url;
}

void content_remember_url(struct content_cache *cc, const char *item_id, const char *url)
{
	char *id = strdup(item_id), *u = strdup(url);
	struct content_url_hint *h;

	if (!id || !u) {
		free(id);
		free(u);
		return;
	}
	pthread_mutex_lock(&cc->lock);
	h = hint_slot(cc, item_id);
	hint_clear(h);      /* a collision simply forgets the older one */
	h->id = id;
	h->url = u;
	h->at = time(NULL);
	pthread_mutex_unlock(&cc->lock);
}

/* ---- the API ------------------------------------------------------------ */

int content_open(const struct odfs_config *cfg, struct graph *g, struct content_cache **out,
		 char **err)
{
	struct content_cache *cc;
	int rc = -ENOMEM;

	*out = NULL;
	cc = calloc(1, sizeof(*cc));
	if (!cc)
		return -ENOMEM;
	cc->cfg = cfg;
	cc->g = g;
	cc->queue_tail = &cc->queue;
	if (asprintf(&cc->dir, "%s/content", cfg->cache_dir) < 0) {
		cc->dir = NULL;
		goto out_free_cc;
	}
	rc = config_mkdirs(cc->dir, 0700);
	if (rc) {
		if (asprintf(err, "cannot create the cache folder '%s'", cc->dir) < 0)
			*err = NULL;
		goto out_free_cc;
	}
	rc = content_index_open(cc, err);
	if (rc)
		goto out_free_cc;
	rc = content_spare_init(cc);
	if (rc) {
		content_index_close(cc);
		goto out_free_cc;
	}

	pthread_mutex_init(&cc->lock, NULL);
	pthread_cond_init(&cc->changed, NULL);
	pthread_cond_init(&cc->work, NULL);
	pthread_mutex_lock(&cc->lock);
	content_index_evict(cc);      /* the limit may have shrunk since the last mount */
	pthread_mutex_unlock(&cc->lock);
	*out = cc;
	return 0;

out_free_cc:
	free(cc->dir);
	free(cc);
	return rc;
}

void content_close(struct content_cache *cc)
{
	int i;

	if (!cc)
		return;
	pthread_mutex_lock(&cc->lock);
	cc->stopping = 1;
	content_stream_cancel(cc, NULL);
	pthread_cond_broadcast(&cc->work);
	pthread_mutex_unlock(&cc->lock);
	for (i = 0; i < cc->nworkers; i++)
		pthread_join(cc->workers[i], NULL);
	content_spare_stop(cc);

	pthread_mutex_lock(&cc->lock);
	while (cc->items) {
		/* Handles the kernel never released (unmount mid-read): save and free. */
		struct content_item *it = cc->items;

		cc->items = it->next;
		if (it->unsaved)
			content_index_save(cc, it, 0);
		item_free(it);
	}
	for (i = 0; i < CONTENT_URL_SLOTS; i++)
		hint_clear(&cc->hints[i]);
	for (i = 0; i < CONTENT_ALIAS_SLOTS; i++) {
		free(cc->aliases[i].from);
		free(cc->aliases[i].to);
	}
	pthread_mutex_unlock(&cc->lock);
	content_index_close(cc);
	pthread_cond_destroy(&cc->work);
	pthread_cond_destroy(&cc->changed);
	pthread_mutex_destroy(&cc->lock);
	free(cc->dir);
	free(cc);
}

/*
 * A local id's bytes are the only copy: whatever is stored for it is
 * current, whatever its tag (its upload may have landed and tagged it
 * while the caller still had the local id from the cache).  When they
 * moved to the real id meanwhile, that item.  -ENOENT when nothing is
 * stored (a new file).  Lock held.
 */
static int local_get(struct content_cache *cc, const char *id, int64_t size,
		     struct content_item **out)
{
	unsigned i;
	int rc;

	*out = content_item_find(cc, id);
	if (*out)
		return 0;
	rc = content_item_get(cc, id, NULL, size, out);
	if (rc != -ENOENT)
		return rc;
	for (i = 0; i < CONTENT_ALIAS_SLOTS; i++) {
		if (cc->aliases[i].from && strcmp(cc->aliases[i].from, id) == 0)
			return content_item_get(cc, cc->aliases[i].to, NULL, size, out);
	}
	return -ENOENT;
}

void content_alias_add(struct content_cache *cc, const char *from, const char *to)
{
	struct content_alias *a;
	char *f, *t;

	if (!cache_id_is_local(from))
		return;
	f = strdup(from);
	t = strdup(to);
	if (!f || !t) {
		free(f);
		free(t);
		return;
	}
	a = &cc->aliases[cc->alias_next++ % CONTENT_ALIAS_SLOTS];
	free(a->from);
	free(a->to);
	a->from = f;
	a->to = t;
}

int content_file_open_mode(struct content_cache *cc, const struct drive_item *item, int writable,
			   struct content_file **out)
{
	const char *tag = item->ctag ? item->ctag : item->etag ? item->etag : "";
	int64_t size = item->size > 0 ? item->size : 0;
	struct content_item *it;
	struct content_file *f;
	time_t at = time(NULL);
	char *url;
	int rc;

	*out = NULL;
	if (!item->id)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&cc->lock);
	content_stream_start_workers(cc);
	rc = -ENOENT;
	if (cache_id_is_local(item->id))
		rc = local_get(cc, item->id, size, &it);
	if (rc == -ENOENT)
		rc = content_item_get(cc, item->id, tag, size, &it);
	if (rc) {
		pthread_mutex_unlock(&cc->lock);
		free(f);
		return rc;
	}
	if (item->name && (!it->name || strcmp(it->name, item->name) != 0)) {
		char *name = strdup(item->name);

		if (name) {
			free(it->name);
			it->name = name;
		}
	}
	url = item->download_url ? strdup(item->download_url) : hint_take(cc, item->id, &at);
	if (url) {
		free(it->url);
		it->url = url;
		it->url_at = at;
	}
	it->opens++;
	it->refs++;
	it->cancel = 0;
	pthread_mutex_unlock(&cc->lock);
	f->cc = cc;
	f->it = it;
	if (writable) {
		/* writers changes under io too: fetches read it holding io alone. */
		pthread_mutex_lock(&it->io);
		pthread_mutex_lock(&cc->lock);
		it->writers++;
		if (it->streaming && !it->stream_stop) {
			it->stream_stop = 1;
			content_changed_wake(cc);
		}
		pthread_mutex_unlock(&cc->lock);
		pthread_mutex_unlock(&it->io);
		f->writable = 1;
	}
	*out = f;
	return 0;
}

int content_file_open(struct content_cache *cc, const struct drive_item *item,
		      struct content_file **out)
{
	return content_file_open_mode(cc, item, 0, out);
}

ssize_t content_read_fd(struct content_file *f, size_t size, off_t off, int *fd)
{
	struct content_cache *cc = f->cc;
	struct content_item *it = f->it;
	int64_t end, fetch_start, fetch_end, max_window;
	int sequential, rc;

	*fd = it->fd;   /* fixed for the item's life */
	if (off < 0)
		return -EINVAL;
	if (size == 0)
		return 0;
	max_window = cc->cfg->readahead_max > CONTENT_BLOCK ? cc->cfg->readahead_max
							     : CONTENT_BLOCK;
	pthread_mutex_lock(&cc->lock);
	if (off >= it->size) {
		pthread_mutex_unlock(&cc->lock);
		return 0;
	}
	end = it->size - off < (int64_t)size ? it->size : off + (int64_t)size;
	/* What was asked, rounded up to whole blocks: small reads coalesce, little is wasted. */
	fetch_start = off;
	fetch_end = off + (end - off + CONTENT_BLOCK - 1) / CONTENT_BLOCK * CONTENT_BLOCK;
	if (fetch_end > it->size)
		fetch_end = it->size;
	sequential = f->window > 0 && off + CONTENT_SEQ_SLACK >= f->expect &&
		     off <= f->expect + CONTENT_SEQ_SLACK;
	if (!f->window && end - off >= BIG_FIRST_READ) {
		/*
		 * The kernel's first read is this long only when the reader
		 * asked for that much at once (cat, cp): the start of a
		 * sequential run, so the stream starts now, not a round trip
		 * later.  A thumbnailer's small first read stays small.
		 */
		sequential = 1;
		f->expect = off;
	}
	if (sequential) {
		f->window = f->window < FIRST_WINDOW ? FIRST_WINDOW : f->window * 2;
		if (f->window > max_window)
			f->window = max_window;
		if (end > f->expect)
			f->expect = end;
		f->run += end - off;
	} else {
		f->window = CONTENT_BLOCK;
		f->expect = end;
		f->run = end - off;
	}
	content_stream_note(cc, f, off, fetch_end, sequential);
	if (sequential && !content_stream_will_reach(it, fetch_end)) {
		/* Read ahead half of what was read in a row, up to the window. */
		int64_t more = f->run / 2 < f->window ? f->run / 2 : f->window;
		int64_t want = it->size - off < more ? it->size
						     : off + more / CONTENT_BLOCK * CONTENT_BLOCK;

		if (want > fetch_end)
			fetch_end = want;
	}
	rc = content_fetch_ensure(cc, it, off, end, fetch_start, fetch_end, NULL);
	if (end > it->size)
		end = it->size > off ? it->size : off;  /* truncated meanwhile */
	pthread_mutex_unlock(&cc->lock);
	if (rc)
		return rc;
	return (ssize_t)(end - off);
}

ssize_t content_read(struct content_file *f, char *buf, size_t size, off_t off)
{
	struct content_cache *cc = f->cc;
	size_t done = 0;
	ssize_t len;
	int fd, rc;

	len = content_read_fd(f, size, off, &fd);
	if (len <= 0)
		return len;
	while ((ssize_t)done < len) {
		ssize_t n = pread(fd, buf + done, (size_t)len - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			pthread_mutex_lock(&cc->lock);
			log_warn("cannot read the cache file of item '%s'", f->it->id);
			pthread_mutex_unlock(&cc->lock);
			return rc;
		}
		if (n == 0)
			break;  /* a truncate shrank the file under us */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

void content_file_close(struct content_file *f)
{
	struct content_cache *cc;
	struct content_item *it;

	if (!f)
		return;
	cc = f->cc;
	it = f->it;
	if (f->writable) {
		pthread_mutex_lock(&it->io);
		pthread_mutex_lock(&cc->lock);
		it->writers--;
		pthread_mutex_unlock(&cc->lock);
		pthread_mutex_unlock(&it->io);
	}
	pthread_mutex_lock(&cc->lock);
	if (--it->opens == 0) {
		it->cancel = 1;
		content_stream_cancel(cc, it);
	}
	content_item_unref(cc, it);
	pthread_mutex_unlock(&cc->lock);
	free(f);
}

void content_invalidate(struct content_cache *cc, const char *item_id)
{
	struct content_item *it;
	struct content_row row;

	pthread_mutex_lock(&cc->lock);
	it = content_item_find(cc, item_id);
	if (it) {
		if (it->local || it->writers)
			log_debug("keeping the local content of item '%s'", item_id);
		else
			content_item_detach(cc, it);
	} else if (content_index_load(cc, item_id, &row) == 0) {
		if (row.dirty)
			log_debug("keeping the local content of item '%s'", item_id);
		else
			content_drop_stored(cc, item_id);
		content_row_release(&row);
	}
	pthread_mutex_unlock(&cc->lock);
}
