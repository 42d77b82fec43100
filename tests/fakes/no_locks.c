/* LD_PRELOAD shim: a file system without locks (NFS without lockd), for HDF5 files only.
 *
 * flock() and fcntl() lock requests on files whose name ends in ".h5" fail with ENOLCK (errno 37), as on an
 * NFS mount without a lock daemon; every other call goes to libc. Build: cc -shared -fPIC -o no_locks.so
 * no_locks.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int is_h5(int fd) {
    char link[64], name[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, name, sizeof name - 1);
    if (n < 3) return 0;
    name[n] = '\0';
    return strcmp(name + n - 3, ".h5") == 0;
}

int flock(int fd, int operation) {
    static int (*real_flock)(int, int);
    if (is_h5(fd)) {
        errno = ENOLCK;
        return -1;
    }
    if (!real_flock) real_flock = (int (*)(int, int))dlsym(RTLD_NEXT, "flock");
    return real_flock(fd, operation);
}

int fcntl(int fd, int cmd, ...) {
    static int (*real_fcntl)(int, int, ...);
    va_list args;
    va_start(args, cmd);
    void *arg = va_arg(args, void *);
    va_end(args);
    if ((cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW) && is_h5(fd)) {
        errno = ENOLCK;
        return -1;
    }
    if (!real_fcntl) real_fcntl = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl");
    return real_fcntl(fd, cmd, arg);
}
