#ifndef KILN_CLIBGIT2_SHIM_H
#define KILN_CLIBGIT2_SHIM_H
#include <git2.h>
#include <git2/sys/stream.h>
#include <git2/sys/transport.h>
/* libgit2 1.8 moved git_error_set_str (SocketStream.swift reports a stalled
   transfer with it) from git2/errors.h to git2/sys/errors.h. */
#if LIBGIT2_VER_MAJOR > 1 || (LIBGIT2_VER_MAJOR == 1 && LIBGIT2_VER_MINOR >= 8)
#include <git2/sys/errors.h>
#endif

/* Shallow fetch: git_fetch_options.depth came in libgit2 1.7, deepening and
   GIT_FETCH_DEPTH_UNSHALLOW in 1.8 (libgit2's CHANGELOG, v1.7 and v1.8).
   Kiln builds against 1.5 too (Debian 12's own); there it fetches the whole
   history and says so (KilnGit, LibGit2.supportsShallow). */
#if LIBGIT2_VER_MAJOR > 1 || (LIBGIT2_VER_MAJOR == 1 && LIBGIT2_VER_MINOR >= 8)
static inline int CKiln_git_supports_shallow(void) { return 1; }
static inline void CKiln_git_fetch_options_set_depth(git_fetch_options *options, int depth) {
    options->depth = depth;
}
static inline int CKiln_git_fetch_depth_unshallow(void) { return GIT_FETCH_DEPTH_UNSHALLOW; }
#else
static inline int CKiln_git_supports_shallow(void) { return 0; }
static inline void CKiln_git_fetch_options_set_depth(git_fetch_options *options, int depth) {
    (void)options;
    (void)depth;
}
static inline int CKiln_git_fetch_depth_unshallow(void) { return 0; }
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

/* Kiln's smart-HTTP subtransport (KilnGit, WholePackTransport.swift): libgit2's
   own (git_smart_subtransport_http) inside, the upload-pack request rewritten
   on its way. git2/sys/transport.h: the smart transport calls a subtransport
   and its streams through these structures, so each starts with libgit2's. */
typedef struct {
    git_smart_subtransport parent;
    git_smart_subtransport *http;
} CKiln_git_pack_subtransport;

typedef struct {
    git_smart_subtransport_stream parent;
    git_smart_subtransport_stream *http;
} CKiln_git_pack_stream;

/* git_libgit2_opts is variadic: the search path of one configuration level
   (git2/common.h, GIT_OPT_GET_SEARCH_PATH), where libgit2 also looks for the
   system and XDG attribute files. */
static inline int CKiln_git_search_path(int level, git_buf *out) {
    return git_libgit2_opts(GIT_OPT_GET_SEARCH_PATH, level, out);
}

/* How much of the packs libgit2 keeps mapped (git2/common.h,
   GIT_OPT_SET_MWINDOW_SIZE and GIT_OPT_SET_MWINDOW_MAPPED_LIMIT; variadic). */
static inline int CKiln_git_set_pack_windows(size_t window, size_t limit) {
    int error = git_libgit2_opts(GIT_OPT_SET_MWINDOW_SIZE, window);
    return error < 0 ? error : git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT, limit);
}
static inline int CKiln_git_get_pack_windows(size_t *window, size_t *limit) {
    int error = git_libgit2_opts(GIT_OPT_GET_MWINDOW_SIZE, window);
    return error < 0 ? error : git_libgit2_opts(GIT_OPT_GET_MWINDOW_MAPPED_LIMIT, limit);
}

#endif
