#ifndef FUSEBOX_STATFS_H
#define FUSEBOX_STATFS_H

/// The filesystem type (statfs's f_type) of the filesystem holding `path`,
/// or -1 with errno set. Glibc's Swift module leaves <sys/vfs.h> out.
long fusebox_filesystem_type(const char *path);

#endif
