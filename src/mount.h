/*
 * mount.h - running a mount (the command line's default command).
 */
#ifndef ODFS_MOUNT_H
#define ODFS_MOUNT_H

struct fuse_args;
struct odfs_config;

/*
 * Mount the drive cfg describes on mountpoint and serve it until it is
 * unmounted; args are the libfuse options.  Daemonizes unless
 * cfg->foreground.  Errors are logged; returns the exit status (0 or 1).
 */
int mount_run(struct odfs_config *cfg, struct fuse_args *args, const char *mountpoint);

#endif
