#ifndef KILN_CLIBGIT2_SHIM_H
#define KILN_CLIBGIT2_SHIM_H
#include <git2.h>
#include <git2/sys/stream.h>
/* libgit2 1.8 moved git_error_set_str (SocketStream.swift reports a stalled
   transfer with it) from git2/errors.h to git2/sys/errors.h. */
#if LIBGIT2_VER_MAJOR > 1 || (LIBGIT2_VER_MAJOR == 1 && LIBGIT2_VER_MINOR >= 8)
#include <git2/sys/errors.h>
#endif

/* Kiln's socket stream (KilnGit, SocketStream.swift), registered with
   git_stream_register(GIT_STREAM_STANDARD, ...): git2/sys/stream.h says a
   stream must have git_stream as its first element. */
typedef struct {
    git_stream parent;
    int fd;
    char *host;
    char *port;
} CKiln_git_socket_stream;

#endif
