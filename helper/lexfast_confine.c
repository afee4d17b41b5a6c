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
 * On x86_64 it is built without the C library (its own _start and raw
 * system calls, setup.py links it -nostdlib -static): a static glibc's
 * start-up alone cost 0.3 ms of CPU per spawn, about all that confinement
 * cost; this way the extra exec costs a few microseconds. Elsewhere it uses
 * the C library's syscall(). No kernel headers beyond the ancient ones: the
 * Landlock ABI is spelled out here so that the oldest manylinux image
 * builds it. */
#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define E_NOENT 2
#define E_IO 5
#define E_ACCES 13
#define E_NOTDIR 20
#define E_INVAL 22
#define E_NOSYS 38
#define E_LOOP 40
#define O_RDONLY_ 0
#define O_DIRECTORY_ 0200000
#define O_CLOEXEC_ 02000000
#define O_PATH_ 010000000
#define AT_FDCWD_ (-100)
#define F_GETFD_ 1
#define F_SETFD_ 2
#define FD_CLOEXEC_ 1
#define PR_SET_SECCOMP_ 22
#define PR_SET_NO_NEW_PRIVS_ 38
#define AF_UNIX_ 1
#define AF_NETLINK_ 16
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

/* -- system calls: a negative errno on failure, as the kernel returns them -- */
#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#define X32_SYSCALL_BIT 0x40000000
#define NOLIBC 1

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* the compiler may emit calls to these for struct copies and clears */
void *memset(void *dst, int c, size_t n) {
    unsigned char *p = dst;
    while (n--)
        *p++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *p = dst;
    const unsigned char *q = src;
    while (n--)
        *p++ = *q++;
    return dst;
}
#else
#if defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif
#include <errno.h>
#include <unistd.h>

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r == -1 ? -errno : r;
}
#endif

#define sys3(n, a, b, c) sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

static int streq(const char *a, const char *b) {
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static size_t put_str(char *buf, size_t at, const char *s) {
    while (*s && at < 120)
        buf[at++] = *s++;
    return at;
}

static size_t put_int(char *buf, size_t at, long v) {
    char digits[24];
    int n = 0;
    if (v < 0) {
        buf[at++] = '-';
        v = -v;
    }
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 20);
    while (n)
        buf[at++] = digits[--n];
    return at;
}

static void leave(int code) {
    for (;;)
        sys3(__NR_exit_group, code, 0, 0);
}

static void fail(const char *stage, long err) {
    char buf[160];
    size_t n = 0;
    if (sys3(__NR_fcntl, 3, F_GETFD_, 0) >= 0) {
        n = put_str(buf, n, stage);
        buf[n++] = ' ';
        n = put_int(buf, n, err);
        buf[n++] = '\n';
        sys3(__NR_write, 3, buf, n);
    } else {
        n = put_str(buf, n, "lexfast-confine: ");
        n = put_str(buf, n, stage);
        n = put_str(buf, n, " failed, errno ");
        n = put_int(buf, n, err);
        buf[n++] = '\n';
        sys3(__NR_write, 2, buf, n);
    }
    leave(127);
}

static int landlock_abi(void) {
    long abi = sys3(NR_landlock_create_ruleset, 0, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

static void add_path(long ruleset, const char *path, uint64_t access, uint64_t handled) {
    uint64_t allowed = access & handled;
    long fd = sys6(__NR_openat, AT_FDCWD_, (long)path, O_PATH_ | O_CLOEXEC_ | O_DIRECTORY_, 0, 0, 0);
    if (fd == -E_NOTDIR) {  /* a file: only the accesses a file has */
        allowed &= FS_FILE_ONLY;
        fd = sys6(__NR_openat, AT_FDCWD_, (long)path, O_PATH_ | O_CLOEXEC_, 0, 0, 0);
    }
    if (fd < 0) {
        if (fd == -E_NOENT || fd == -E_NOTDIR || fd == -E_ACCES || fd == -E_LOOP)
            return;  /* a scope not made yet: nothing beneath it to allow */
        fail("landlock", -fd);
    }
    struct path_beneath_attr rule;
    rule.allowed_access = allowed;
    rule.parent_fd = (int32_t)fd;
    long rc = allowed ? sys3(NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule) : 0;
    if (rc < 0)
        fail("landlock", -rc);
    sys3(__NR_close, fd, 0, 0);
}

static void deny_network_sockets(void) {
#ifdef SECCOMP_ARCH
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* another ABI (i386 on x86_64) has other numbers: refuse it all */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | E_ACCES),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef X32_SYSCALL_BIT
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | E_ACCES),
#endif
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | E_ACCES),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* the domain: the low 32 bits of the first argument */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX_, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK_, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | E_ACCES),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
    long rc = sys3(__NR_prctl, PR_SET_SECCOMP_, SECCOMP_MODE_FILTER, &prog);
    if (rc < 0)
        fail("seccomp", -rc);
#endif
    /* elsewhere: Landlock's TCP rules only (--probe says seccomp=0) */
}

static int confine_main(int argc, char **argv, char **envp) {
    if (argc == 2 && streq(argv[1], "--probe")) {
        char buf[64];
        size_t n = put_str(buf, 0, "abi=");
        n = put_int(buf, n, landlock_abi());
#ifdef SECCOMP_ARCH
        n = put_str(buf, n, " seccomp=1\n");
#else
        n = put_str(buf, n, " seccomp=0\n");
#endif
        sys3(__NR_write, 1, buf, n);
        return 0;
    }
    long flags = sys3(__NR_fcntl, 3, F_GETFD_, 0);
    if (flags >= 0)
        sys3(__NR_fcntl, 3, F_SETFD_, flags | FD_CLOEXEC_);

    int no_net = 0, i = 1;
    for (; i < argc; i++) {
        if (streq(argv[i], "--"))
            break;
        if (streq(argv[i], "-n"))
            no_net = 1;
        else if ((!streq(argv[i], "-r") && !streq(argv[i], "-w") && !streq(argv[i], "-d"))
                 || i + 1 >= argc)
            fail("usage", E_INVAL);
        else
            i++;
    }
    if (i + 2 >= argc)
        fail("usage", E_INVAL);

    int abi = landlock_abi();
    if (abi < 1)
        fail("landlock", E_NOSYS);
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
    long ruleset = sys3(NR_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0)
        fail("landlock", -ruleset);
    for (int j = 1; j < i; j++) {
        if (argv[j][0] != '-' || argv[j][1] == 'n')
            continue;
        uint64_t access = argv[j][1] == 'r' ? FS_READ : argv[j][1] == 'w' ? FS_WRITE : FS_DEVICE;
        add_path(ruleset, argv[++j], access, attr.handled_access_fs);
    }
    long rc = sys6(__NR_prctl, PR_SET_NO_NEW_PRIVS_, 1, 0, 0, 0, 0);
    if (rc < 0)
        fail("landlock", -rc);
    rc = sys3(NR_landlock_restrict_self, ruleset, 0, 0);
    if (rc < 0)
        fail("landlock", -rc);
    sys3(__NR_close, ruleset, 0, 0);
    if (no_net)
        deny_network_sockets();

    rc = sys3(__NR_execve, argv[i + 1], &argv[i + 2], envp);
    fail("exec", rc < 0 ? -rc : E_IO);
    return 127;
}

#ifdef NOLIBC
/* the kernel's entry: argc, argv..., NULL, envp..., NULL on the stack */
__attribute__((used)) void lexfast_start(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    leave(confine_main(argc, argv, argv + argc + 1));
}
__asm__(".text\n.globl _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call lexfast_start\n  hlt\n");
#else
extern char **environ;

int main(int argc, char **argv) {
    return confine_main(argc, argv, environ);
}
#endif
