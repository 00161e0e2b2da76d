/*
 * fs_virtual.h - folders of the mount that are not on the drive: the
 * trash folder file managers use (fs_virtual.c) and the read-only view of
 * file versions (fs_versions.c).  Not an API for other modules: fs.c only
 * wraps its operations table with fs_virtual_ops().
 *
 * Virtual inodes live above every cache row id (SQLite row ids stay far
 * below 2^60), one range per kind, so an inode alone says what it is.
 */
#ifndef ODFS_FS_VIRTUAL_H
#define ODFS_FS_VIRTUAL_H

#include <stdint.h>

#include <fuse_lowlevel.h>

#define FSV_TRASH_BIT    (UINT64_C(1) << 62)  /* the trash folder and what is in it */
#define FSV_MIRROR_BIT   (UINT64_C(1) << 61)  /* versions view: a folder or file's folder */
#define FSV_VERSION_BIT  (UINT64_C(1) << 60)  /* versions view: one version (a file) */
#define FSV_VERSIONS_DIR ".onedrive-versions" /* the view's name at the mount root */

/*
 * The table fs.c hands to libfuse: real's operations, with the virtual
 * folders answered first.  Call once, before the session starts.
 */
const struct fuse_lowlevel_ops *fs_virtual_ops(const struct fuse_lowlevel_ops *real);

/* fs_versions.c: the versions view, for inodes with FSV_MIRROR_BIT or FSV_VERSION_BIT. */
static inline int fsv_is_versions(uint64_t ino)
{
	return (ino & (FSV_MIRROR_BIT | FSV_VERSION_BIT)) && !(ino & FSV_TRASH_BIT);
}
void fsv_versions_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsv_versions_getattr(fuse_req_t req, fuse_ino_t ino);
void fsv_versions_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsv_versions_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus);
void fsv_versions_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsv_versions_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fsv_versions_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
