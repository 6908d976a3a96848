// The bounded YAML reader (see yaml.hpp). The measuring pass runs yaml-cpp's parser with an
// event handler that builds nothing: per node it keeps a count and a height, per anchor the
// count and height of the node it names, so an alias costs what its node costs without being
// walked. The pass throws at the first event past a limit, before the parser goes deeper, so
// neither memory nor the parser's recursion grows with the attack.
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "support/support.hpp"
#include "support/yaml.hpp"

namespace tunnelgate::support {

namespace {

/// Thrown out of the parser by the measuring handler; carries the place of the event.
struct limit_crossed {
  YAML::Mark mark;
  std::string message;
};

struct size_and_height {
  std::size_t nodes = 0;   ///< nodes met walking the node, aliases followed, itself included
  std::size_t bytes = 0;   ///< scalar bytes met on that walk
  std::size_t height = 0;  ///< levels from the node down to its deepest leaf, itself included
};

class measure final : public YAML::EventHandler {
 public:
  explicit measure(const yaml_limits& l) : limits_(l) {}

  void OnDocumentStart(const YAML::Mark& /*mark*/) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor, 0); }
  void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                const std::string& value) override {
    leaf(mark, anchor, value.size());
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    written(mark);
    const auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      // yaml-cpp registers an anchor when its node starts, so `&a [*a]` parses into a cycle;
      // a walk of it would never end.
      throw limit_crossed{mark,
                          "this alias refers to a node that contains it (a cycle); remove the "
                          "alias or point it at a node defined before"};
    }
    add(mark, it->second);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    open(mark, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct frame {
    YAML::anchor_t anchor = 0;
    size_and_height self{1, 0, 1};
  };

  void written(const YAML::Mark& mark) {
    if (++written_ > limits_.max_nodes) {
      throw limit_crossed{
          mark, "more than " + std::to_string(limits_.max_nodes) + " YAML nodes; split the file"};
    }
  }

  /// A node (or an alias standing for one) of `s` placed in the innermost open collection.
  void add(const YAML::Mark& mark, const size_and_height& s) {
    // Nothing may overflow: every count stays below the limit it is checked against.
    if (s.nodes > limits_.max_expanded_nodes - expanded_) {
      throw limit_crossed{mark, "YAML aliases expand to more than " +
                                    std::to_string(limits_.max_expanded_nodes) +
                                    " nodes; remove the anchors/aliases or split the file"};
    }
    expanded_ += s.nodes;
    if (s.bytes > limits_.max_expanded_bytes - expanded_bytes_) {
      throw limit_crossed{mark, "YAML aliases expand to more than " +
                                    size_text(limits_.max_expanded_bytes) +
                                    " of text; remove the anchors/aliases or split the file"};
    }
    expanded_bytes_ += s.bytes;
    if (stack_.size() + s.height > limits_.max_depth) {
      throw limit_crossed{mark, "YAML nested deeper than " + std::to_string(limits_.max_depth) +
                                    " levels (aliases included); flatten the structure"};
    }
    if (!stack_.empty()) {
      auto& parent = stack_.back().self;
      parent.nodes += s.nodes;
      parent.bytes += s.bytes;
      parent.height = std::max(parent.height, s.height + 1);
    }
  }

  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor, std::size_t bytes) {
    written(mark);
    add(mark, {1, bytes, 1});
    if (anchor != 0) anchors_[anchor] = {1, bytes, 1};
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    written(mark);
    // The collection counts once here; its content is added to it (and to expanded_) as it
    // arrives, so the totals are checked at every event, not only when it closes.
    add(mark, {1, 0, 1});
    stack_.push_back({anchor, {1, 0, 1}});
  }

  void close() {
    const frame f = stack_.back();
    stack_.pop_back();
    // add() already counted the collection and its content in expanded_ and in the parent:
    // only the parent's share of the content and the height remain to fix.
    if (!stack_.empty()) {
      auto& parent = stack_.back().self;
      parent.nodes += f.self.nodes - 1;
      parent.bytes += f.self.bytes;
      parent.height = std::max(parent.height, f.self.height + 1);
    }
    if (f.anchor != 0) anchors_[f.anchor] = f.self;
  }

  const yaml_limits& limits_;
  std::vector<frame> stack_;  ///< open collections, innermost last
  std::unordered_map<YAML::anchor_t, size_and_height> anchors_;  ///< closed anchored nodes
  std::size_t written_ = 0;
  std::size_t expanded_ = 0;
  std::size_t expanded_bytes_ = 0;
};

yaml_error at(std::string_view origin, const YAML::Mark& m, std::string message) {
  if (m.is_null()) return {std::string(origin), 0, 0, std::move(message)};
  return {std::string(origin), m.line + 1, m.column + 1, std::move(message)};
}

}  // namespace

std::string yaml_error::to_string() const {
  if (file.empty()) return message;
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  return s + ": " + message;
}

yaml_document read_yaml(std::string_view text, std::string_view origin, std::string_view what,
                        const yaml_limits& limits) {
  yaml_document doc;
  if (text.size() > limits.max_bytes) {
    doc.error = yaml_error{std::string(origin), 0, 0,
                           std::string(what) + " is " + std::to_string(text.size()) +
                               " bytes, more than the " + size_text(limits.max_bytes) +
                               " allowed; make it smaller (split it where the format allows)"};
    return doc;
  }
  yaml_limits l = limits;
  l.max_depth = std::min(l.max_depth, max_yaml_depth);
  const std::string owned(text);
  try {
    std::istringstream in(owned);
    YAML::Parser parser(in);
    measure m(l);
    parser.HandleNextDocument(m);
  } catch (const limit_crossed& e) {
    doc.error = at(origin, e.mark, e.message);
    return doc;
  } catch (const YAML::Exception& e) {
    doc.error = at(origin, e.mark, "YAML syntax error: " + e.msg);
    return doc;
  }
  try {
    doc.root = YAML::Load(owned);
  } catch (const YAML::Exception& e) {
    doc.error = at(origin, e.mark, "YAML syntax error: " + e.msg);
  }
  return doc;
}

yaml_document read_yaml_file(const std::filesystem::path& path, std::string_view what,
                             const yaml_limits& limits) {
  std::string text;
  try {
    text = read_file(path, what, limits.max_bytes);
  } catch (const std::system_error& e) {
    yaml_document doc;
    doc.error = yaml_error{{}, 0, 0, e.what()};  // the message names the file
    return doc;
  }
  return read_yaml(text, path.string(), what, limits);
}

text_position position_of(const YAML::Node& n) {
  // A missing key's node is invalid: yaml-cpp throws from Mark() on it.
  if (!n.IsDefined()) return {};
  const auto m = n.Mark();
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

std::string located(std::string_view origin, const YAML::Node& n, std::string_view message) {
  const auto p = position_of(n);
  std::string s(origin);
  if (p.line > 0) s += ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
  return s + ": " + std::string(message);
}

}  // namespace tunnelgate::support
