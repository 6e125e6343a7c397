#include "files.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../core/error.h"

namespace df {

namespace {

std::string errno_text(int e) { return std::strerror(e); }

// "dir" and "name" of a path ("." for a bare name).
std::pair<std::string, std::string> split_path(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The pid of a "<name>.tmp-<pid>" file name, or -1.
long temp_pid(const std::string& file, std::string& stem) {
  size_t at = file.rfind(".tmp-");
  if (at == std::string::npos || at == 0 || at + 5 >= file.size() || file.size() - at - 5 > 9) return -1;
  long pid = 0;
  for (size_t i = at + 5; i < file.size(); i++) {
    if (file[i] < '0' || file[i] > '9') return -1;
    pid = pid * 10 + (file[i] - '0');
  }
  stem = file.substr(0, at);
  return pid > 0 ? pid : -1;
}

bool process_alive(long pid) {
  if (pid == long(::getpid())) return true;
  if (::kill(pid_t(pid), 0) == 0) return true;
  return errno != ESRCH;  // EPERM: it exists, owned by someone else
}

}  // namespace

std::vector<uint8_t> read_regular_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    fail(Code::Io, what + ": cannot open " + path + ": " + errno_text(e));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(Code::Io, what + ": cannot stat " + path + ": " + errno_text(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(Code::Io, what + ": " + path + (S_ISDIR(st.st_mode) ? " is a directory" : " is not a regular file"));
  }
  if (uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    fail(Code::Io, what + ": " + path + " is " + std::to_string(st.st_size) + " bytes, more than the " +
                       std::to_string(max_bytes) + " allowed");
  }
  std::vector<uint8_t> data(size_t(st.st_size));
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : 0;
      ::close(fd);
      fail(Code::Io, what + ": short read of " + path + (e ? ": " + errno_text(e) : " (the file shrank)"));
    }
    got += size_t(n);
  }
  ::close(fd);
  return data;
}

std::string temp_path_for(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

void fsync_parent_dir(const std::string& path, const std::string& what) {
  std::string dir = split_path(path).first;
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    fail(Code::Io, what + ": cannot open the directory " + dir + " to sync it: " + errno_text(e));
  }
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0 && e != EINVAL) fail(Code::Io, what + ": cannot sync the directory " + dir + ": " + errno_text(e));
}

void write_file_atomic(const std::string& path, const std::vector<ByteChunk>& chunks, const std::string& what) {
  remove_stale_temps(path);
  std::string tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    fail(Code::Io, what + ": cannot create " + tmp + ": " + errno_text(e));
  }
  int err = 0;
  for (const auto& c : chunks) {
    const char* p = static_cast<const char*>(c.data);
    size_t left = c.size;
    while (left > 0 && !err) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      p += n;
      left -= size_t(n);
    }
  }
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    fail(Code::Io, what + ": writing " + tmp + " failed: " + errno_text(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail(Code::Io, what + ": cannot rename " + tmp + " to " + path + ": " + errno_text(e));
  }
  fsync_parent_dir(path, what);
}

int remove_stale_temps(const std::string& path) {
  auto [dir, name] = split_path(path);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (struct dirent* ent = ::readdir(d)) {
    std::string file = ent->d_name, stem;
    long pid = temp_pid(file, stem);
    if (pid < 0 || !(stem == name || ends_with(stem, ".safetensors")) || process_alive(pid)) continue;
    struct stat st;
    if (::fstatat(::dirfd(d), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::unlinkat(::dirfd(d), file.c_str(), 0) == 0) removed++;
  }
  ::closedir(d);
  return removed;
}

}  // namespace df
