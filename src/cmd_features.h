/*
 * cmd_features.h - the commands about one file of a mounted drive:
 * versions, restore, cp, share.
 *
 * They work on a path inside a running mount and talk to its daemon
 * through the extended attributes fs_features.c serves, so they need no
 * settings, profile or tokens of their own (see fs_features.c for the
 * attributes).  Output on stdout, errors through log.c.
 */
#ifndef ODFS_CMD_FEATURES_H
#define ODFS_CMD_FEATURES_H

/* 1 when name is one of these commands. */
int cmd_features_is(const char *name);

/* Run the command argv[0] (argc >= 1); the process exit status (0 or 1). */
int cmd_features_main(int argc, char **argv);

#endif
