#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include "CKilnLinux.h"

int CKilnLinux_pipe2(int fds[2], int flags) {
    return pipe2(fds, flags);
}

int CKilnLinux_posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}
