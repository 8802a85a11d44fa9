/* Preloaded (/etc/ld.so.preload) into every process of a stand-in instance body.
 *
 * The bodies share the test's network namespace (loopback), so two bodies whose
 * services bind 0.0.0.0:8080, as they would on EC2, would collide.  On EC2 an
 * instance's only IPv4 address is its private one, so a wildcard bind means that
 * address: this turns every IPv4 bind to an address outside 127.0.0.0/8 into a
 * bind to the body's own address (read from /run/kiln/address, written by the
 * body's init), and refuses IPv6 binds other than ::1 (EADDRNOTAVAIL; sshd and
 * most servers go on with IPv4 alone), so that nothing in a body listens beyond
 * loopback.  A process without /run/kiln/address (outside a body) is unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int body_address(struct in_addr *out) {
    char text[64] = {0};
    FILE *f = fopen("/run/kiln/address", "re");
    if (!f) return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) text[--n] = 0;
    return inet_pton(AF_INET, text, out) == 1;
}

int bind(int fd, const struct sockaddr *address, socklen_t length) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    struct in_addr own;
    if (address && body_address(&own)) {
        if (address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)address;
            if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) {
                struct sockaddr_in rebound = *in;
                rebound.sin_addr = own;
                return real_bind(fd, (const struct sockaddr *)&rebound, sizeof rebound);
            }
        } else if (address->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)address;
            if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
                errno = EADDRNOTAVAIL;
                return -1;
            }
        }
    }
    return real_bind(fd, address, length);
}
