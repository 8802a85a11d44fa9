#ifndef KILN_CLIBGIT2_SHIM_H
#define KILN_CLIBGIT2_SHIM_H
#include <git2.h>
#include <git2/sys/stream.h>

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
