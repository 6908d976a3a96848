// Bounded YAML reading with located errors, shared by the rules, gateway configuration and UEM
// inventory loaders.
//
// yaml-cpp keeps an aliased node once and shares it, so `*a` repeated costs nothing while the
// file is parsed; the cost comes when a loader walks the tree and meets the shared node once per
// path to it. Ten anchors of ten aliases each make 10^10 nodes to walk out of a file under 1 KB
// ("billion laughs"). read_yaml therefore measures the document before yaml-cpp builds it: one
// pass over the parser's events counts the nodes as written, the nodes and the scalar bytes a
// walk that follows every alias would meet (one long string aliased a million times is the same
// attack), and the nesting depth (aliases included), and refuses the text at the first
// event that crosses a limit, naming its line and column. Only then is the document built. A
// loader that walks the returned tree in any way meets at most `max_expanded_nodes` nodes and
// `max_expanded_bytes` of text, and recurses at most `max_depth` levels. An alias to a node that
// contains it (`&a [*a]`, a cycle yaml-cpp accepts) is refused too.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace tunnelgate::support {

/// What one caller accepts. Every limit is checked; the first one crossed refuses the file.
struct yaml_limits {
  std::size_t max_bytes = 0;           ///< size of the text
  std::size_t max_nodes = 0;           ///< scalars, sequences, mappings and aliases as written
  std::size_t max_expanded_nodes = 0;  ///< nodes met when every alias is followed
  std::size_t max_expanded_bytes = 0;  ///< bytes of scalar text met when every alias is followed
  std::size_t max_depth = 0;           ///< nesting, following aliases; at most max_yaml_depth
};

/// yaml-cpp's own guard throws at 2000 levels; ours must stop well before, and a walk of this
/// depth is harmless on any thread's stack.
inline constexpr std::size_t max_yaml_depth = 256;

/// Rules files (dtr) and the gateway configuration: written by hand, a few hundred KB at most.
inline constexpr yaml_limits config_yaml_limits{
    .max_bytes = std::size_t{4} << 20,
    .max_nodes = 1'000'000,
    .max_expanded_nodes = 1'000'000,
    .max_expanded_bytes = std::size_t{16} << 20,
    .max_depth = 64,
};

/// The UEM file source's inventory: generated, about 20 nodes and 300 bytes per device, so
/// these allow some 200,000 devices.
inline constexpr yaml_limits inventory_yaml_limits{
    .max_bytes = std::size_t{64} << 20,
    .max_nodes = 4'000'000,
    .max_expanded_nodes = 4'000'000,
    .max_expanded_bytes = std::size_t{128} << 20,
    .max_depth = 64,
};

/// One problem with a YAML text: `file:line:column: message` (line and column 1-based, 0 when
/// the problem has no place, such as a file too large; `file` is empty when the message itself
/// names the file, as for a file that cannot be read).
struct yaml_error {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
  std::string to_string() const;
};

/// The first document of a YAML text (a Null node for an empty text), or why it was refused.
struct yaml_document {
  YAML::Node root;
  std::optional<yaml_error> error;  ///< set exactly when the text was refused
  explicit operator bool() const noexcept { return !error; }
};

/// Parses `text` within `limits`. Syntax errors and crossed limits come back as `error`, never
/// as an exception; `origin` names the file in it. `what` names the kind of file in the
/// size message ("rules file", "inventory").
yaml_document read_yaml(std::string_view text, std::string_view origin, std::string_view what,
                        const yaml_limits& limits);

/// read_file (at most limits.max_bytes) then read_yaml; an unreadable or oversized file is an
/// `error` too, whose message names the file ("cannot read <what> <path>: ...").
yaml_document read_yaml_file(const std::filesystem::path& path, std::string_view what,
                             const yaml_limits& limits);

/// 1-based line and column of a node; {0, 0} for a node without a place (a missing key).
struct text_position {
  int line = 0;
  int column = 0;
};
text_position position_of(const YAML::Node& n);

/// "origin:line:column: message", or "origin: message" for a node without a place.
std::string located(std::string_view origin, const YAML::Node& n, std::string_view message);

}  // namespace tunnelgate::support
