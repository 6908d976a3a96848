// A fresh directory for one test, removed with everything in it by the destructor.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace tunnelgate::testing {

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tunnelgate-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed in " + tmpl);
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

  /// Writes `content` to `name` atomically (temp file, then rename), so a reader that polls
  /// the file never sees half of it; returns the full path.
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    auto p = path_ / name;  // not const: returned by move
    const auto tmp = path_ / (name + ".tmp");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << content;
    }
    std::filesystem::rename(tmp, p);
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace tunnelgate::testing
