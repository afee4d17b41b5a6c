/* lexfast-confine: the exec helper every child of lexfast starts through
 * (process.*, proc.spawn, MCP servers; issue 26).
 *
 *   lexfast-confine [-n] [-r PATH]... [-w PATH]... [-d PATH]... -- EXE ARGV0 [ARG]...
 *   lexfast-confine --probe
 *
 * posix_spawn starts this instead of EXE, so nothing runs between fork and
 * exec but libc and this program: no Python (no preexec_fn), thread-safe.
 * It sets no_new_privs (a setuid or file-capability binary cannot lift what
 * follows), applies a Landlock domain:
 *   -r PATH  read and execute beneath PATH
 *   -w PATH  write, create, remove, rename, truncate beneath PATH
 *   -d PATH  a device (/dev/null): read, write, truncate, its ioctls
 *   -n       no TCP bind or connect (Landlock ABI 4), and a seccomp filter
 *            refusing every socket family but AF_UNIX and AF_NETLINK (UDP,
 *            raw, packet sockets) and io_uring (which can open sockets
 *            without the socket syscall)
 * with signal and abstract-unix-socket scoping where the ABI has them (6),
 * then execve's EXE with ARGV0... and the environment it was given. Signal
 * dispositions and the mask were reset by posix_spawn and survive both
 * execs. A PATH that does not exist is skipped (a scope not made yet).
 *
 * Failures are reported on descriptor 3 when it is open (the parent's
 * error pipe, made close-on-exec here): "<stage> <errno>\n", stage one of
 * exec, landlock, seccomp, usage; then exit 127. Nothing is ever run
 * unconfined after a failed step.
 *
 * --probe prints "abi=N seccomp=0|1" (the Landlock ABI, 0 when absent).
 *
 * No kernel headers beyond the ancient ones: the Landlock ABI is spelled
 * out here so that the oldest manylinux image builds it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

extern char **environ;

#ifndef O_PATH
#define O_PATH 010000000
#endif
#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif
/* the same numbers on every architecture (the generic syscall table) */
#define NR_landlock_create_ruleset 444
#define NR_landlock_add_rule 445
#define NR_landlock_restrict_self 446
#define NR_io_uring_setup 425
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#define LANDLOCK_RULE_PATH_BENEATH 1

#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_REMOVE_DIR (1ULL << 4)
#define FS_REMOVE_FILE (1ULL << 5)
#define FS_MAKE_CHAR (1ULL << 6)
#define FS_MAKE_DIR (1ULL << 7)
#define FS_MAKE_REG (1ULL << 8)
#define FS_MAKE_SOCK (1ULL << 9)
#define FS_MAKE_FIFO (1ULL << 10)
#define FS_MAKE_BLOCK (1ULL << 11)
#define FS_MAKE_SYM (1ULL << 12)
#define FS_REFER (1ULL << 13)     /* ABI 2 */
#define FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define NET_BIND_TCP (1ULL << 0)  /* ABI 4 */
#define NET_CONNECT_TCP (1ULL << 1)
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define SCOPE_SIGNAL (1ULL << 1)

#define FS_READ (FS_EXECUTE | FS_READ_FILE | FS_READ_DIR)
#define FS_WRITE (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR \
                  | FS_MAKE_REG | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM \
                  | FS_REFER | FS_TRUNCATE)
#define FS_DEVICE (FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
/* what a rule on a file (not a directory) may grant */
#define FS_FILE_ONLY (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)

struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#define X32_SYSCALL_BIT 0x40000000
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

static void fail(const char *stage, int err) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s %d\n", stage, err);
    if (fcntl(3, F_GETFD) != -1 && n > 0) {
        ssize_t w = write(3, buf, (size_t)n);
        (void)w;
    } else {
        fprintf(stderr, "lexfast-confine: %s: %s\n", stage, strerror(err));
    }
    _exit(127);
}

static int landlock_abi(void) {
    long abi = syscall(NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

static void add_path(int ruleset, const char *path, uint64_t access, uint64_t handled) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == ELOOP)
            return;  /* a scope not made yet: nothing beneath it to allow */
        fail("landlock", errno);
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail("landlock", errno);
    struct path_beneath_attr rule;
    rule.allowed_access = access & handled;
    if (!S_ISDIR(st.st_mode))
        rule.allowed_access &= FS_FILE_ONLY;
    rule.parent_fd = fd;
    if (rule.allowed_access != 0
        && syscall(NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
        fail("landlock", errno);
    close(fd);
}

static void deny_network_sockets(void) {
#ifdef SECCOMP_ARCH
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* another ABI (i386 on x86_64) has other numbers: refuse it all */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef X32_SYSCALL_BIT
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
#endif
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* the domain: the low 32 bits of the first argument */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        fail("seccomp", errno);
#endif
    /* elsewhere: Landlock's TCP rules only (--probe says seccomp=0) */
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--probe") == 0) {
#ifdef SECCOMP_ARCH
        int seccomp = 1;
#else
        int seccomp = 0;
#endif
        printf("abi=%d seccomp=%d\n", landlock_abi(), seccomp);
        return 0;
    }
    int flags = fcntl(3, F_GETFD);
    if (flags != -1)
        fcntl(3, F_SETFD, flags | FD_CLOEXEC);

    int no_net = 0, i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-n") == 0)
            no_net = 1;
        else if ((strcmp(argv[i], "-r") && strcmp(argv[i], "-w") && strcmp(argv[i], "-d"))
                 || i + 1 >= argc)
            fail("usage", EINVAL);
        else
            i++;
    }
    if (i + 2 >= argc)
        fail("usage", EINVAL);

    int abi = landlock_abi();
    if (abi < 1)
        fail("landlock", ENOSYS);
    struct ruleset_attr attr = {0, 0, 0};
    attr.handled_access_fs = FS_READ | FS_WRITE | FS_IOCTL_DEV;
    if (abi < 2)
        attr.handled_access_fs &= ~FS_REFER;
    if (abi < 3)
        attr.handled_access_fs &= ~FS_TRUNCATE;
    if (abi < 5)
        attr.handled_access_fs &= ~FS_IOCTL_DEV;
    if (no_net && abi >= 4)
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP;  /* no rule: none allowed */
    if (abi >= 6)
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL;
    size_t size = abi >= 6 ? sizeof attr : abi >= 4 ? offsetof(struct ruleset_attr, scoped)
                                                    : offsetof(struct ruleset_attr, handled_access_net);
    int ruleset = (int)syscall(NR_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0)
        fail("landlock", errno);
    for (int j = 1; j < i; j++) {
        if (argv[j][0] != '-' || argv[j][1] == 'n')
            continue;
        uint64_t access = argv[j][1] == 'r' ? FS_READ : argv[j][1] == 'w' ? FS_WRITE : FS_DEVICE;
        add_path(ruleset, argv[++j], access, attr.handled_access_fs);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail("landlock", errno);
    if (syscall(NR_landlock_restrict_self, ruleset, 0) != 0)
        fail("landlock", errno);
    close(ruleset);
    if (no_net)
        deny_network_sockets();

    execve(argv[i + 1], &argv[i + 2], environ);
    fail("exec", errno);
    return 127;
}
