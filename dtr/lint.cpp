// lint: what administrators get wrong in rules files that is still valid YAML and valid rules.
#include <algorithm>
#include <map>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr {

namespace {

class linter {
 public:
  explicit linter(const policy& p) : p_(p), spec_(p.spec()) {}

  std::vector<finding> run() {
    unused_proxies();
    for (std::size_t si = 0; si < spec_.rule_sets.size(); ++si) {
      const auto& s = spec_.rule_sets[si];
      if (s.rules.empty()) {
        warn(s.pos, "empty-set",
             "rule set '" + s.name + "' has no rules: its default (" +
                 std::string(to_string(s.default_action)) + ") applies to every destination");
      }
      unreachable_set(si);
      apps_in_two_sets(si);
      rules(si);
    }
    std::stable_sort(out_.begin(), out_.end(), [](const finding& a, const finding& b) {
      return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    });
    return std::move(out_);
  }

 private:
  void warn(position pos, std::string code, std::string message) {
    out_.push_back({finding::severity::warning,
                    std::move(code),
                    {spec_.origin, pos.line, pos.column, std::move(message)}});
  }

  static std::string where(const rule& r) {
    return "rule " + std::to_string(r.rank) + " (line " + std::to_string(r.pos.line) + ")";
  }

  void unused_proxies() {
    for (const auto& px : spec_.proxies) {
      bool used = false;
      for (const auto& s : spec_.rule_sets) {
        for (const auto& r : s.rules)
          used = used || (r.act == action::proxy && r.proxy == px.name);
      }
      if (!used) {
        warn(px.pos, "unused-proxy",
             "proxy '" + px.name + "' is not used by any rule; remove it or add a proxy rule");
      }
    }
  }

  void unreachable_set(std::size_t si) {
    const auto& s = spec_.rule_sets[si];
    if (s.m != mode::full_device) return;
    std::string lost;
    std::string first;
    for (auto pl : s.platforms) {
      const rule_set* winner = p_.select(pl, {});
      if (winner != &s) {
        lost += (lost.empty() ? "" : ", ") + std::string(to_string(pl));
        first = winner->name;
      }
    }
    if (lost.empty()) return;
    warn(s.pos, "unreachable-set",
         "full-device rule set '" + s.name + "' is never used on " + lost + ": '" + first +
             "' comes first there; only the first full-device set of a platform applies");
  }

  void apps_in_two_sets(std::size_t si) {
    const auto& s = spec_.rule_sets[si];
    if (s.m != mode::per_app) return;
    for (std::size_t ai = 0; ai < s.apps.size(); ++ai) {
      std::string lost;
      std::string first;
      for (auto pl : s.platforms) {
        const rule_set* winner = p_.select(pl, s.apps[ai]);
        if (winner != &s) {
          lost += (lost.empty() ? "" : ", ") + std::string(to_string(pl));
          first = winner->name;
        }
      }
      if (lost.empty()) continue;
      warn(ai < s.app_pos.size() ? s.app_pos[ai] : s.pos, "app-in-two-sets",
           "app '" + s.apps[ai] + "' is already in per-app set '" + first + "' for " + lost +
               "; this set never applies to it there");
    }
  }

  void rules(std::size_t si) {
    const auto& s = spec_.rule_sets[si];
    // canonical text -> (rule index, destination index) of its first appearance in the set
    std::map<std::string, std::pair<std::size_t, std::size_t>> seen;
    for (std::size_t ri = 0; ri < s.rules.size(); ++ri) {
      const auto& r = s.rules[ri];
      std::vector<std::string> shadow_notes;  // per destination, empty when reachable
      std::size_t unreachable = 0;
      for (std::size_t di = 0; di < r.destinations.size(); ++di) {
        const auto& d = r.destinations[di];
        const auto pos = di < r.destination_pos.size() ? r.destination_pos[di] : r.pos;
        const auto text = d.text();
        if (d.k == destination::kind::string_suffix) {
          warn(pos, "string-suffix",
               "'" + text + "' is a plain string suffix: it also matches 'x" + d.value +
                   "'; if you mean the name and its subdomains, write '" + d.value + "' and '*." +
                   d.value + "', which stay on a label boundary");
        }
        auto [it, fresh] = seen.try_emplace(text, ri, di);
        if (!fresh) {
          const auto& first = s.rules[it->second.first];
          warn(pos, "duplicate-destination",
               "'" + text + "' is already listed in " + where(first) + " of set '" + s.name + "'");
          if (it->second.first != ri) ++unreachable;
          shadow_notes.emplace_back();
          continue;
        }
        const auto cover = p_.covering(si, d, r.rank);
        if (cover.empty()) {
          shadow_notes.emplace_back();
          continue;
        }
        const auto& by = s.rules[cover.front().first];
        shadow_notes.push_back("'" + text + "' never matches here: '" +
                               by.destinations[cover.front().second].text() + "' in " + where(by) +
                               " matches it first");
        ++unreachable;
      }
      if (!r.destinations.empty() && unreachable == r.destinations.size()) {
        warn(r.pos, "shadowed-rule",
             "rule " + std::to_string(r.rank) + " of set '" + s.name +
                 "' never matches: earlier rules match all of its destinations");
        continue;
      }
      for (std::size_t di = 0; di < shadow_notes.size(); ++di) {
        if (shadow_notes[di].empty()) continue;
        warn(di < r.destination_pos.size() ? r.destination_pos[di] : r.pos, "shadowed-destination",
             shadow_notes[di]);
      }
    }
  }

  const policy& p_;
  const policy_spec& spec_;
  std::vector<finding> out_;
};

}  // namespace

std::vector<finding> lint(const policy& p) {
  return linter(p).run();
}

}  // namespace tunnelgate::dtr
