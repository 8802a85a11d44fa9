// glibc calls that Swift's Glibc module does not declare: glibc has them only
// under _GNU_SOURCE, which the module is built without. Each is wrapped by a
// function of ours, compiled with _GNU_SOURCE in shim.c (as swift-nio's
// CNIOLinux does). Both have been in glibc since 2.29; Debian 12 has 2.36.
#ifndef C_KILN_LINUX_H
#define C_KILN_LINUX_H

#include <spawn.h>

/// pipe2(2): a pipe whose ends get `flags` (O_CLOEXEC) atomically.
int CKilnLinux_pipe2(int fds[2], int flags);

/// posix_spawn_file_actions_addchdir_np(3): the child starts in `path`.
int CKilnLinux_posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

#endif
