/* openat2(2) for the compiled core: opens that the kernel keeps beneath a
 * scope root (RESOLVE_BENEATH), so a path component swapped for a symlink
 * between the policy check and the open cannot leave the scope. */
#ifndef LEXFAST_OPENAT2_H
#define LEXFAST_OPENAT2_H

#include <errno.h>
#include <stdint.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every Linux architecture */
#endif
struct lexfast_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};
/* Returns a descriptor, or -errno. */
static inline int lexfast_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                                  uint64_t resolve) {
    struct lexfast_open_how how;
    long r;
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return r < 0 ? -errno : (int)r;
}
#else
static inline int lexfast_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                                  uint64_t resolve) {
    (void)dirfd; (void)path; (void)flags; (void)mode; (void)resolve;
    return -ENOSYS;
}
#endif

#endif
