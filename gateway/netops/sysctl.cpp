// The forwarding sysctls under /proc/sys/net and the record that lets a later run restore
// them after a crash (kept in the nft table's comment, so it lives exactly as long as the
// table: whoever replaces or deletes a stale table restores the sysctls first).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

#include "gateway/netops/detail.hpp"

namespace tunnelgate::netops::detail {

namespace {

constexpr const char* restore_tag = "tunnelgate restore:";

}  // namespace

std::string conf_path(int family, const std::string& scope, const std::string& key) {
  return std::string("/proc/sys/net/ipv") + (family == 6 ? "6" : "4") + "/conf/" + scope + "/" +
         key;
}

std::optional<std::string> read_sysctl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string v;
  std::getline(in, v);
  return v;
}

void write_sysctl(const std::string& path, const std::string& value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  int e = 0;
  if (fd < 0) {
    e = errno;
  } else {
    const std::string line = value + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) e = errno;
    ::close(fd);
  }
  if (e != 0) {
    const std::string hint = (e == EACCES || e == EPERM)
                                 ? " (CAP_NET_ADMIN missing: run as root or grant the capability)"
                                 : "";
    throw std::system_error(e, std::generic_category(),
                            "netops: writing " + value + " to " + path + hint);
  }
}

std::string encode_restore(const std::vector<sysctl_change>& changes) {
  std::string out = restore_tag;
  for (const auto& c : changes) {
    // /proc/sys/net/ipv4/conf/<scope>/<key> -> "4/<scope>/f=<previous>" (F: force_forwarding)
    constexpr std::string_view prefix = "/proc/sys/net/ipv";
    const auto& p = c.path;
    if (p.compare(0, prefix.size(), prefix) != 0) continue;
    const char family = p[prefix.size()];
    const auto scope_begin = prefix.size() + std::string_view("4/conf/").size();
    const auto slash = p.find('/', scope_begin);
    if (slash == std::string::npos) continue;
    const std::string scope = p.substr(scope_begin, slash - scope_begin);
    const std::string key = p.substr(slash + 1);
    out += ' ';
    out += family;
    out += '/' + scope + '/' + (key == "force_forwarding" ? "F" : "f") + '=' + c.previous;
  }
  return out;
}

std::vector<sysctl_change> decode_restore(const std::string& text) {
  std::vector<sysctl_change> out;
  const auto at = text.find(restore_tag);
  if (at == std::string::npos) return out;
  // The record ends with the comment: at its closing quote in an nft listing.
  const auto begin = at + std::string_view(restore_tag).size();
  const auto end = text.find_first_of("\"\n", begin);
  std::istringstream in(text.substr(begin, end == std::string::npos ? end : end - begin));
  std::string tok;
  while (in >> tok) {
    // "<4|6>/<scope>/<f|F>=<digit>"
    const auto s1 = tok.find('/');
    const auto s2 = tok.rfind('/');
    const auto eq = tok.rfind('=');
    if (s1 != 1 || s2 == s1 || eq != s2 + 2 || eq + 2 != tok.size()) continue;
    const char family = tok[0];
    const char key = tok[s2 + 1];
    const char value = tok[eq + 1];
    const std::string scope = tok.substr(s1 + 1, s2 - s1 - 1);
    if ((family != '4' && family != '6') || (key != 'f' && key != 'F') || value < '0' ||
        value > '2' || !valid_ifname(scope))
      continue;
    out.push_back({conf_path(family - '0', scope, key == 'F' ? "force_forwarding" : "forwarding"),
                   std::string(1, value), ""});
  }
  return out;
}

std::vector<std::string> restore_sysctls(const std::vector<sysctl_change>& changes) {
  std::vector<std::string> problems;
  for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
    const auto now = read_sysctl(it->path);
    if (!now || *now == it->previous) continue;  // interface gone, or nothing to undo
    try {
      write_sysctl(it->path, it->previous);
    } catch (const std::exception& e) {
      problems.emplace_back(e.what());
    }
  }
  return problems;
}

}  // namespace tunnelgate::netops::detail
