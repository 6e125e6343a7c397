// The portable addon's glibc floor (DECOFLOW_GLIBC_COMPAT, set by portable builds on x86-64 Linux):
// built on a newer glibc, it would otherwise need that glibc's newest symbol versions (pthread and
// dl functions moved into libc in 2.34, exp/log/pow got new versions in 2.29, hypot in 2.35), and
// the static libstdc++ adds __libc_single_threaded (2.32), and fstat64/fstatat64 became functions in 2.33. Here each of them is defined inside the
// addon (hidden, so nothing else sees it) as a call to the oldest version of the same function,
// which every glibc since 2.2.5 has; the link resolves the addon's and libstdc++'s references to
// these definitions. The build adds libpthread.so.0, libdl.so.2 and libm.so.6 as explicit
// dependencies: before glibc 2.34 those versions live there. scripts/prebuild.js reports the newest version left.
#if defined(DECOFLOW_GLIBC_COMPAT) && defined(__x86_64__) && defined(__linux__)

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

// DF_COMPAT(ret, name, params, args): defines `name` in the addon, hidden, calling name@GLIBC_2.2.5
// (x86-64's first symbol version). The definitions carry their symbol names as asm labels, so they
// do not collide with the headers' declarations.
#define DF_COMPAT(ret, name, params, args)                                         \
  ret df_old_##name params;                                                        \
  __asm__(".symver df_old_" #name "," #name "@GLIBC_2.2.5");                       \
  __attribute__((visibility("hidden"))) ret df_new_##name params __asm__(#name); \
  ret df_new_##name params { return df_old_##name args; }

extern "C" {

// libpthread (in libc since 2.34)
DF_COMPAT(int, pthread_create, (pthread_t * t, const pthread_attr_t* a, void* (*f)(void*), void* arg), (t, a, f, arg))
DF_COMPAT(int, pthread_join, (pthread_t t, void** r), (t, r))
DF_COMPAT(int, pthread_detach, (pthread_t t), (t))
DF_COMPAT(int, pthread_once, (pthread_once_t * o, void (*f)()), (o, f))
DF_COMPAT(int, pthread_key_create, (pthread_key_t * k, void (*d)(void*)), (k, d))
DF_COMPAT(int, __pthread_key_create, (pthread_key_t * k, void (*d)(void*)), (k, d))
DF_COMPAT(int, pthread_key_delete, (pthread_key_t k), (k))
DF_COMPAT(void*, pthread_getspecific, (pthread_key_t k), (k))
DF_COMPAT(int, pthread_setspecific, (pthread_key_t k, const void* v), (k, v))

// libdl (in libc since 2.34)
DF_COMPAT(void*, dlopen, (const char* file, int mode), (file, mode))
DF_COMPAT(void*, dlsym, (void* handle, const char* name), (handle, name))
DF_COMPAT(char*, dlerror, (), ())
DF_COMPAT(int, dladdr, (const void* address, Dl_info* info), (address, info))

// libm: new versions in 2.29 (exp, log, pow) and 2.35 (hypot)
DF_COMPAT(double, exp, (double x), (x))
DF_COMPAT(double, log, (double x), (x))
DF_COMPAT(double, pow, (double x, double y), (x, y))
DF_COMPAT(double, hypot, (double x, double y), (x, y))

// The static libstdc++'s std::random_device (which decoflow never uses, but whose object file comes
// with the strings) refers to arc4random (2.36): random bits from getrandom (2.25), or /dev/urandom.
__attribute__((visibility("hidden"))) uint32_t df_arc4random() __asm__("arc4random");
uint32_t df_arc4random() {
  uint32_t v = 0;
  ssize_t n;
  do n = getrandom(&v, sizeof v, 0);
  while (n < 0 && errno == EINTR);
  if (n == ssize_t(sizeof v)) return v;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &v, sizeof v) != ssize_t(sizeof v)) v = 0;
    close(fd);
  }
  return v;
}

// fstat64 and fstatat64 are functions only since 2.33 (the file reader sizes files with fstat, the static
// libstdc++'s filesystem code uses fstatat): before, they were header wrappers of __fxstat64 and
// __fxstatat64 with the stat version 1 of x86-64, which every glibc has.
int df_fxstat64(int ver, int fd, struct stat64* buf);
__asm__(".symver df_fxstat64,__fxstat64@GLIBC_2.2.5");
int df_fxstatat64(int ver, int dirfd, const char* path, struct stat64* buf, int flags);
__asm__(".symver df_fxstatat64,__fxstatat64@GLIBC_2.4");
__attribute__((visibility("hidden"))) int df_fstat64(int fd, struct stat64* buf) __asm__("fstat64");
int df_fstat64(int fd, struct stat64* buf) { return df_fxstat64(1, fd, buf); }
__attribute__((visibility("hidden"))) int df_fstatat64(int dirfd, const char* path, struct stat64* buf, int flags)
    __asm__("fstatat64");
int df_fstatat64(int dirfd, const char* path, struct stat64* buf, int flags) {
  return df_fxstatat64(1, dirfd, path, buf, flags);
}

// libstdc++ asks whether the process is single-threaded (2.32); 0 keeps its reference counts atomic.
__attribute__((visibility("hidden"))) char df_single_threaded __asm__("__libc_single_threaded") = 0;

}  // extern "C"

#endif  // DECOFLOW_GLIBC_COMPAT
