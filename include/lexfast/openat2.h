/* openat2(2) for the compiled core: opens that the kernel keeps beneath a
 * scope root (RESOLVE_BENEATH), so a path component swapped for a symlink
 * between the policy check and the open cannot leave the scope. */
#ifndef LEXFAST_OPENAT2_H
#define LEXFAST_OPENAT2_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

/* O_PATH and stat's st_mtim are Linux's: where they are missing (macOS, the
 * BSDs) lexfast_openat2 is -ENOSYS anyway, so the callers' fast paths are
 * never taken there; these only let the same source compile. */
#ifdef O_PATH
#define LEXFAST_O_PATH O_PATH
#else
#define LEXFAST_O_PATH 0
#endif
#if defined(__APPLE__)
#define LEXFAST_MTIME_SEC(st) ((st)->st_mtimespec.tv_sec)
#define LEXFAST_MTIME_NSEC(st) ((st)->st_mtimespec.tv_nsec)
#else
#define LEXFAST_MTIME_SEC(st) ((st)->st_mtim.tv_sec)
#define LEXFAST_MTIME_NSEC(st) ((st)->st_mtim.tv_nsec)
#endif

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every Linux architecture */
#endif
#define LEXFAST_OPENAT2_RETRIES 64
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
    int tries = 0;
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    /* EAGAIN: with RESOLVE_BENEATH/RESOLVE_IN_ROOT the kernel refuses a ".."
     * step when a rename or mount anywhere raced with the lookup (it cannot
     * then prove the walk stayed beneath); openat2(2) says to retry. Bounded,
     * so a lasting EAGAIN (an O_NONBLOCK open of a leased file) still ends. */
    do {
        r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    } while (r < 0 && errno == EAGAIN && ++tries < LEXFAST_OPENAT2_RETRIES);
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
