// File-system helpers of the readers and writers: whole-file reads that refuse what is not a regular
// file (a directory is a Code::Io error naming it, not an allocation of a bogus size), durable
// atomic replacement (write a temporary, fsync it, rename it over the target, fsync the directory),
// and the clean-up of temporaries that a killed writer left behind.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace df {

// The whole file. Code::Io (naming `path`) when it cannot be opened or read, is not a regular file,
// or is larger than max_bytes.
std::vector<uint8_t> read_regular_file(const std::string& path, const std::string& what,
                                       uint64_t max_bytes = uint64_t(1) << 40);

// The temporary that a write of `path` by this process goes to: "<path>.tmp-<pid>".
std::string temp_path_for(const std::string& path);

// Writes `chunks` to the temporary of `path`, fsyncs it, renames it over `path` and fsyncs the
// directory, so that after return the new file survives a power loss and a crash at any point
// leaves either the old file or the new one. Code::Io on failure (the target is left untouched and
// the temporary removed).
struct ByteChunk {
  const void* data;
  size_t size;
};
void write_file_atomic(const std::string& path, const std::vector<ByteChunk>& chunks, const std::string& what);

// fsync of the directory holding `path` (what makes a rename in it durable). Code::Io on failure;
// file systems that cannot sync a directory (EINVAL) are accepted.
void fsync_parent_dir(const std::string& path, const std::string& what);

// Removes the temporaries "<name>.tmp-<pid>" in the directory of `path` whose writer `pid` is no
// longer running, where <name> is the file name of `path` or ends in ".safetensors". Best effort
// (an unreadable directory or a failed unlink is ignored); returns how many were removed.
int remove_stale_temps(const std::string& path);

}  // namespace df
