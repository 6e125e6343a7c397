// Native checks of native/io: the safetensors reader's refusals (a directory, overlapping or
// uncovered data bytes), the writer's durability (the directory is fsynced after the rename, seen
// through fsync and rename interposed below) and the clean-up of temporaries left by dead writers.
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "io/files.h"
#include "io/idx.h"
#include "io/image_set.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace df;

// Every fsync and rename of this process, in order: "fsync <resolved path>", "rename <to>".
static std::vector<std::string> g_events;

extern "C" int fsync(int fd) {
  using Fn = int (*)(int);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "fsync"));
  char link[64], target[PATH_MAX] = {0};
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  g_events.push_back("fsync " + std::string(target, n > 0 ? size_t(n) : 0));
  return real(fd);
}

extern "C" int rename(const char* from, const char* to) {
  using Fn = int (*)(const char*, const char*);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "rename"));
  g_events.push_back(std::string("rename ") + to);
  return real(from, to);
}

static std::string g_dir;

static std::string in_dir(const std::string& name) { return g_dir + "/" + name; }

static bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

static void touch(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fputs("partial", f);
  std::fclose(f);
}

// A pid that no process has any more: a child that has exited and been reaped.
static pid_t dead_pid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

// A safetensors file of F32 tensors with the given shapes ([n]) and data_offsets, over data_bytes.
static std::vector<uint8_t> file_with(const std::vector<std::pair<int, std::pair<int, int>>>& tensors, size_t data_bytes) {
  std::string h = "{";
  for (size_t i = 0; i < tensors.size(); i++)
    h += (i ? "," : "") + std::string("\"t") + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[" +
         std::to_string(tensors[i].first) + "],\"data_offsets\":[" + std::to_string(tensors[i].second.first) + "," +
         std::to_string(tensors[i].second.second) + "]}";
  h += "}";
  std::vector<uint8_t> out(8 + h.size() + data_bytes, 0);
  for (int i = 0; i < 8; i++) out[size_t(i)] = uint8_t(uint64_t(h.size()) >> (8 * i));
  std::memcpy(out.data() + 8, h.data(), h.size());
  return out;
}

static void test_cover_exactly_once() {
  // [0,16) [16,24): covered exactly once.
  CHECK(!caught_error([] { SafetensorsFile::parse(file_with({{4, {0, 16}}, {2, {16, 24}}}, 24), "ok"); }).thrown,
        "a file covered exactly once loads");
  struct Case {
    const char* name;
    std::vector<std::pair<int, std::pair<int, int>>> tensors;
    size_t bytes;
    const char* says;
  };
  std::vector<Case> cases = {
      {"overlap", {{4, {0, 16}}, {2, {8, 16}}}, 16, "overlap"},
      {"contained", {{4, {0, 16}}, {1, {4, 8}}, {1, {12, 16}}}, 16, "overlap"},
      {"hole between", {{1, {0, 4}}, {1, {8, 12}}}, 12, "belong to no tensor"},
      {"hole before", {{1, {4, 8}}}, 8, "belong to no tensor"},
      {"trailing bytes", {{1, {0, 4}}}, 12, "belong to no tensor"},
      {"no tensor, some bytes", {}, 4, "belong to no tensor"},
  };
  // A dimension beyond uint64_t (once an undefined conversion, found by fuzz_safetensors).
  std::vector<uint8_t> huge = file_with({{4, {0, 16}}}, 16);
  std::string h(huge.begin() + 8, huge.end() - 16);
  h.replace(h.find("[4]"), 3, "[33333333333333333333333332]");
  std::vector<uint8_t> big(8 + h.size() + 16, 0);
  for (int i = 0; i < 8; i++) big[size_t(i)] = uint8_t(uint64_t(h.size()) >> (8 * i));
  std::memcpy(big.data() + 8, h.data(), h.size());
  CaughtError e0 = caught_error([&] { SafetensorsFile::parse(big, "huge"); });
  CHECK(e0.thrown && e0.code == Code::Format && e0.message.find("non-negative integer") != std::string::npos, "huge dimension: %s",
        e0.message.c_str());
  for (const auto& c : cases) {
    CaughtError e = caught_error([&] { SafetensorsFile::parse(file_with(c.tensors, c.bytes), c.name); });
    CHECK(e.thrown && e.code == Code::Format && e.message.find(c.says) != std::string::npos, "%s: thrown %d code %d: %s",
          c.name, int(e.thrown), int(e.code), e.message.c_str());
  }
}

static void test_directory_is_an_io_error() {
  CaughtError e = caught_error([] { SafetensorsFile::read(g_dir); });
  CHECK(e.thrown && e.code == Code::Io, "reading a directory: code %d (%s)", int(e.code), e.message.c_str());
  CHECK(e.message.find(g_dir) != std::string::npos && e.message.find("directory") != std::string::npos,
        "the message names the path and says it is a directory: %s", e.message.c_str());
}

static void test_write_syncs_the_directory_after_the_rename() {
  float x[3] = {1, 2, 3};
  std::string path = in_dir("synced.safetensors");
  g_events.clear();
  write_safetensors(path, {{"x", {3}, DType::F32, x}}, {});
  char real_dir[PATH_MAX];
  CHECK(realpath(g_dir.c_str(), real_dir) != nullptr, "realpath");
  size_t renamed = g_events.size(), synced_file = g_events.size(), synced_dir = g_events.size();
  for (size_t i = 0; i < g_events.size(); i++) {
    if (g_events[i] == "rename " + path) renamed = i;
    if (g_events[i].rfind("fsync " + std::string(real_dir) + "/synced.safetensors.tmp-", 0) == 0) synced_file = i;
    if (g_events[i] == "fsync " + std::string(real_dir)) synced_dir = i;
  }
  std::string all;
  for (const auto& ev : g_events) all += ev + "; ";
  CHECK(synced_file < renamed, "the temporary is fsynced before the rename: %s", all.c_str());
  CHECK(renamed < g_events.size() && synced_dir > renamed && synced_dir < g_events.size(),
        "the directory is fsynced after the rename: %s", all.c_str());
  CHECK(SafetensorsFile::read(path).entries().size() == 1, "the file reads back");
}

static void test_stale_temporaries_are_removed() {
  pid_t dead = dead_pid();
  std::string tail = ".tmp-" + std::to_string(dead);
  std::string live_tail = ".tmp-" + std::to_string(getppid());
  auto plant = [&] {
    touch(in_dir("model.safetensors" + tail));     // our target's, of a dead writer: removed
    touch(in_dir("other.safetensors" + tail));     // another checkpoint's, dead writer: removed
    touch(in_dir("model.safetensors" + live_tail));  // of a running process: kept
    touch(in_dir("notes.txt" + tail));             // not a checkpoint's: kept
    touch(in_dir("model.safetensors.tmp-x1"));     // not a pid: kept
  };
  plant();
  float x[2] = {1, 2};
  write_safetensors(in_dir("model.safetensors"), {{"x", {2}, DType::F32, x}}, {});
  CHECK(!exists(in_dir("model.safetensors" + tail)), "a save removes its target's stale temporary");
  CHECK(!exists(in_dir("other.safetensors" + tail)), "a save removes another checkpoint's stale temporary");
  CHECK(exists(in_dir("model.safetensors" + live_tail)), "a running writer's temporary is kept");
  CHECK(exists(in_dir("notes.txt" + tail)), "a temporary of another kind of file is kept");
  CHECK(exists(in_dir("model.safetensors.tmp-x1")), "a name without a pid is kept");
  CHECK(!exists(in_dir("model.safetensors.tmp-" + std::to_string(getpid()))), "the save's own temporary is gone");
  plant();
  SafetensorsFile::read(in_dir("model.safetensors"));
  CHECK(!exists(in_dir("model.safetensors" + tail)) && !exists(in_dir("other.safetensors" + tail)),
        "a load removes the stale temporaries too");
  CHECK(exists(in_dir("model.safetensors" + live_tail)), "and keeps a running writer's");
}

static void test_failed_write_leaves_target_and_no_temporary() {
  float x[1] = {1};
  std::string path = in_dir("missing-dir/x.safetensors");
  CaughtError e = caught_error([&] { write_safetensors(path, {{"x", {1}, DType::F32, x}}, {}); });
  CHECK(e.thrown && e.code == Code::Io && e.message.find("missing-dir") != std::string::npos, "write into a missing dir: %s",
        e.message.c_str());
}

static std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

static void test_idx_npy_and_grid_parsers() {
  // IDX: 2 x 3 bytes of rank 2.
  std::vector<uint8_t> idx = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
  IdxHeader ih = parse_idx(idx.data(), idx.size(), 2, "ok.idx");
  CHECK(ih.dims == std::vector<int64_t>({2, 3}) && ih.data_offset == 12, "IDX header read");
  idx[7] = 0xff;  // 255 x 3 elements claimed
  CaughtError e = caught_error([&] { parse_idx(idx.data(), idx.size(), 2, "bad.idx"); });
  CHECK(e.thrown && e.code == Code::Format && e.message.find("header says 255 x 3") != std::string::npos, "%s", e.message.c_str());
  std::vector<uint8_t> huge = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  CHECK(caught_error([&] { parse_idx(huge.data(), huge.size(), 3, "huge.idx"); }).code == Code::Format, "IDX dims overflowing");
  std::vector<uint8_t> empty = {0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 4};  // 2^31 x 0 x 4
  CHECK(caught_error([&] { parse_idx(empty.data(), empty.size(), 3, "empty.idx"); }).code == Code::Format, "IDX zero dimension");

  // .npy: uint8 [2, 2, 2] grey, and bad headers.
  auto npy = [](const std::string& dict, size_t data) {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::string out = std::string("\x93NUMPY\x01\x00", 8) + char(h.size() & 0xff) + char(h.size() >> 8) + h + std::string(data, '\x7f');
    return bytes_of(out);
  };
  std::vector<uint8_t> good = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }", 8);
  NpyImages im = npy_images(good.data(), good.size(), "good.npy");
  CHECK(im.shape == std::vector<int64_t>({2, 1, 2, 2}) && im.data.size() == 8 && im.data[0] == float(127.0 / 127.5 - 1.0), ".npy u8 read");
  // No elements: returned at once, however large the other dimensions (fuzz_npy found a spin).
  std::vector<uint8_t> none = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (211111111111, 0, 4), }", 0);
  NpyImages zero = npy_images(none.data(), none.size(), "none.npy");
  CHECK(zero.data.empty() && zero.shape == std::vector<int64_t>({211111111111, 1, 0, 4}), "an empty .npy gives no data");
  struct Bad {
    std::string dict;
    size_t data;
    Code code;
  };
  for (const Bad& b : std::vector<Bad>{{"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 3), }", 8, Code::Format},
                                       {"{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, Code::Format},
                                       {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, Code::Format},
                                       {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999999999), }", 8, Code::Format},
                                       {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,)}", 8, Code::Format},
                                       {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, Code::Shape},
                                       {"{'descr': '<f4', 'fortran_order': False", 8, Code::Format}}) {
    std::vector<uint8_t> f = npy(b.dict, b.data);
    CaughtError c = caught_error([&] { npy_images(f.data(), f.size(), "bad.npy"); });
    CHECK(c.thrown && c.code == b.code, "%s: code %d, %s", b.dict.c_str(), int(c.code), c.message.c_str());
  }

  // Grids: a 2 x 3 grid of 4-pixel tiles with 1 pixel of padding is 16 x 11.
  GridLayout g = grid_layout(16, 11, 4, -1, 1, 3);
  CHECK(g.padding == 1 && g.cols == 3 && g.rows == 2 && g.first == 1 && g.count == 3, "grid layout %lld %lld %lld",
        (long long)g.padding, (long long)g.cols, (long long)g.rows);
  int64_t left, top;
  grid_tile_origin(g, 4, 4, left, top);
  CHECK(left == 6 && top == 6, "tile 4 at (6, 6), got (%lld, %lld)", (long long)left, (long long)top);
  CHECK(caught_error([] { grid_layout(16, 11, 5, -1, 0, -1); }).code == Code::ArgValue, "not a grid of 5-pixel tiles");
  CHECK(caught_error([] { grid_layout(3, 3, 4, 0, 0, -1); }).code == Code::ArgValue, "no tile fits");
  std::vector<uint8_t> raw = {0, 255, 255, 255};  // a 2 x 2 grey tile averaged to 1 pixel
  float px = 0;
  pixels_to_planar(raw.data(), raw.size(), 2, 1, 1, &px);
  CHECK(px == float(765.0 / 4 / 127.5 - 1), "box average %g", double(px));
  CHECK(caught_error([&] { pixels_to_planar(raw.data(), 3, 2, 1, 1, &px); }).code == Code::Format, "short pixels");
}

int main() {
  char tmpl[] = "/tmp/decoflow-test-io-XXXXXX";
  g_dir = mkdtemp(tmpl);
  test_cover_exactly_once();
  test_directory_is_an_io_error();
  test_write_syncs_the_directory_after_the_rename();
  test_stale_temporaries_are_removed();
  test_failed_write_leaves_target_and_no_temporary();
  test_idx_npy_and_grid_parsers();
  std::string cmd = "rm -rf '" + g_dir + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", g_dir.c_str());
  return test_summary("test_io");
}
