// policy: validation of a rules model, compilation into matchers, and decisions.
#include <algorithm>
#include <set>
#include <unordered_map>

#include "dtr/dtr.hpp"
#include "dtr/host.hpp"
#include "dtr/matcher.hpp"
#include "dtr/text.hpp"

namespace tunnelgate::dtr {

std::string diagnostic::to_string() const {
  std::string s = file.empty() ? "<rules>" : file;
  if (line > 0) {
    s += ":" + std::to_string(line);
    if (column > 0) s += ":" + std::to_string(column);
  }
  return s + ": " + message;
}

namespace {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

/// Cheap pre-check before inet_pton: IP literals only use hex digits, '.', ':' and brackets,
/// and almost every host name has a letter beyond 'f'.
bool may_be_ip(std::string_view h) noexcept {
  for (const char c : h) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                    c == '.' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

/// The address an IP flow is decided on: the one place where a flow's host becomes an address.
/// IPv4-mapped and IPv4-compatible IPv6 literals are decided as their IPv4 address, so that
/// `::ffff:10.0.0.1` cannot slip past `block 10.0.0.0/8`.
std::optional<ip_address> flow_address(std::string_view host) noexcept {
  if (!may_be_ip(host)) return std::nullopt;
  auto ip = parse_ip(host);
  if (ip) ip = normalize_mapped(*ip);
  return ip;
}

constexpr std::size_t platform_count = all_platforms.size();
constexpr std::int32_t no_set = -1;

}  // namespace

struct policy::impl {
  policy_spec spec;
  std::vector<detail::set_matcher> matchers;  // one per rule set
  /// app id -> first per-app set (index) per platform, or no_set
  std::unordered_map<std::string, std::array<std::int32_t, platform_count>, string_hash,
                     std::equal_to<>>
      per_app;
  std::array<std::int32_t, platform_count> full_device{};

  std::int32_t select_index(platform p, std::string_view app) const noexcept {
    const auto pi = static_cast<std::size_t>(p);
    if (!app.empty()) {
      if (auto it = per_app.find(app); it != per_app.end() && it->second[pi] != no_set) {
        return it->second[pi];
      }
    }
    return full_device[pi];
  }
};

policy::policy(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
policy::~policy() = default;

const policy_spec& policy::spec() const noexcept {
  return impl_->spec;
}

const proxy_def* policy::find_proxy(std::string_view name) const noexcept {
  for (const auto& p : impl_->spec.proxies) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const rule_set* policy::select(platform p, std::string_view app) const noexcept {
  const auto i = impl_->select_index(p, app);
  return i == no_set ? nullptr : &impl_->spec.rule_sets[static_cast<std::size_t>(i)];
}

decision policy::evaluate(const flow& f) const noexcept {
  decision d;
  const auto si = impl_->select_index(f.plat, f.app);
  if (si == no_set) {
    d.refusal = "no-rule-set";
    return d;
  }
  const auto& set = impl_->spec.rule_sets[static_cast<std::size_t>(si)];
  const auto& m = impl_->matchers[static_cast<std::size_t>(si)];
  d.set = &set;

  const detail::entry* e = nullptr;
  if (auto ip = flow_address(f.host)) {
    e = ip->v6 ? m.v6.best(*ip, f.port) : m.v4.best(*ip, f.port);
  } else {
    host_buffer buf;
    switch (normalize_ascii_host(f.host, buf)) {
      case host_status::ok:
        e = m.hosts.best(buf.view(), f.port);
        break;
      case host_status::bad:
        d.set = nullptr;
        d.refusal = "bad-host";
        return d;
      case host_status::non_ascii: {
        auto n = normalize_host(f.host);
        if (!n) {
          d.set = nullptr;
          d.refusal = "bad-host";
          return d;
        }
        e = m.hosts.best(n.value(), f.port);
        break;
      }
    }
  }
  if (e == nullptr) {
    d.act = set.default_action;
    d.line = set.default_pos.line;
    return d;
  }
  const auto& r = set.rules[e->rule];
  d.act = r.act;
  d.rank = r.rank;
  d.line = r.pos.line;
  d.matched = &r.destinations[e->dest];
  if (r.act == action::proxy) d.proxy = find_proxy(r.proxy);
  return d;
}

std::vector<std::pair<std::size_t, std::size_t>> policy::covering(std::size_t set_index,
                                                                  const destination& d,
                                                                  int before_rank) const {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  const auto& m = impl_->matchers.at(set_index);
  auto add = [&](const detail::entry& e) {
    if (static_cast<int>(e.rule) + 1 >= before_rank) return;
    if (e.lo > d.ports.lo || e.hi < d.ports.hi) return;
    out.emplace_back(e.rule, e.dest);
  };
  if (d.k == destination::kind::cidr) {
    (d.network.v6 ? m.v6 : m.v4).walk(d.network, d.prefix, [&](const detail::entry& e) { add(e); });
  } else {
    // Which stored patterns cover every host `d` matches (see lint): a string suffix anywhere
    // on the path; a label suffix when `d`'s hosts are all longer than it (or `d` is the same
    // or a narrower label suffix); an exact host only an identical exact host.
    const bool d_label = d.k == destination::kind::label_suffix;
    const bool d_exact = d.k == destination::kind::exact;
    m.hosts.walk(d.value, [&](const detail::entry& e, std::size_t remaining) {
      switch (e.m) {
        case detail::entry::match::suffix:
          add(e);
          break;
        case detail::entry::match::label:
          if (remaining > 0 || d_label) add(e);
          break;
        case detail::entry::match::whole:
          if (remaining == 0 && d_exact) add(e);
          break;
      }
    });
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------------------------
// compile

namespace {

class validator {
 public:
  explicit validator(const policy_spec& spec) : spec_(spec) {}

  std::vector<diagnostic> run() {
    std::set<std::string, std::less<>> proxy_names;
    for (std::size_t i = 0; i < spec_.proxies.size(); ++i) {
      const auto& p = spec_.proxies[i];
      const auto path = "proxies." + detail::shown(p.name);
      if (p.name.empty()) error(p.pos, "proxies", "a proxy needs a name");
      check_text(p.pos, path, "proxy name", p.name);
      if (!proxy_names.insert(p.name).second) {
        error(p.pos, path,
              "proxy '" + detail::shown(p.name) + "' is defined twice; give each proxy one name");
      }
    }
    std::set<std::string, std::less<>> set_names;
    for (std::size_t si = 0; si < spec_.rule_sets.size(); ++si) {
      const auto& s = spec_.rule_sets[si];
      const auto path = "rule_sets[" + std::to_string(si) + "]";
      if (s.name.empty()) error(s.pos, path + ".name", "every rule set needs a name");
      check_text(s.pos, path + ".name", "name", s.name);
      for (std::size_t ai = 0; ai < s.apps.size(); ++ai) {
        check_text(ai < s.app_pos.size() ? s.app_pos[ai] : s.pos,
                   path + ".apps[" + std::to_string(ai) + "]", "app id", s.apps[ai]);
      }
      if (!s.name.empty() && !set_names.insert(s.name).second) {
        error(s.pos, path + ".name",
              "rule set name '" + detail::shown(s.name) + "' is used twice; names must be unique");
      }
      if (s.platforms.empty()) {
        error(s.pos, path + ".platforms",
              "a rule set needs at least one platform (ios, android, macos, windows, linux)");
      }
      if (s.m == mode::per_app && s.apps.empty()) {
        error(s.pos, path + ".apps",
              "a per-app rule set needs `apps: [...]` listing at least one app id");
      }
      if (s.m == mode::full_device && !s.apps.empty()) {
        error(s.pos, path + ".apps",
              "a full-device rule set applies to every app; remove `apps` or use mode: per-app");
      }
      if (s.default_action == action::proxy) {
        error(s.default_pos, path + ".default",
              "the default action must be tunnel, bypass or block (proxy needs destinations; "
              "add a proxy rule with destinations: ['*'] instead)");
      }
      for (std::size_t ri = 0; ri < s.rules.size(); ++ri) {
        check_rule(s.rules[ri], path + ".rules[" + std::to_string(ri) + "]", proxy_names);
      }
    }
    return std::move(errors_);
  }

 private:
  void check_rule(const rule& r, const std::string& path,
                  const std::set<std::string, std::less<>>& proxy_names) {
    if (r.destinations.empty()) {
      error(r.pos, path + ".destinations",
            "the destination list is empty; list at least one destination or use a preset");
    }
    if (r.act == action::proxy && r.proxy.empty()) {
      error(r.pos, path + ".proxy",
            "a proxy rule needs `proxy: <name>` naming one of the file's proxies");
    } else if (r.act == action::proxy && !proxy_names.contains(r.proxy)) {
      std::string known;
      for (const auto& n : proxy_names)
        known += (known.empty() ? "" : ", ") + detail::shown(n);
      error(r.proxy_pos.line ? r.proxy_pos : r.pos, path + ".proxy",
            "proxy '" + detail::shown(r.proxy) + "' is not defined under `proxies:` (defined: " +
                (known.empty() ? "none" : known) + ")");
    } else if (r.act != action::proxy && !r.proxy.empty()) {
      error(r.proxy_pos.line ? r.proxy_pos : r.pos, path + ".proxy",
            "`proxy` only goes with action: proxy (this rule's action is " +
                std::string(to_string(r.act)) + ")");
    }
  }

  void error(const position& pos, const std::string& path, const std::string& message) {
    errors_.push_back({spec_.origin, pos.line, pos.column, path + ": " + message});
  }

  /// Names end up in PAC comments, profiles, diagnostics and logs (see name_problem).
  void check_text(const position& pos, const std::string& path, std::string_view what,
                  std::string_view text) {
    if (auto problem = detail::name_problem(what, text); !problem.empty())
      error(pos, path, problem);
  }

  const policy_spec& spec_;
  std::vector<diagnostic> errors_;
};

detail::set_matcher build_matcher(const rule_set& s) {
  detail::set_matcher m;
  for (std::uint32_t ri = 0; ri < s.rules.size(); ++ri) {
    const auto& r = s.rules[ri];
    for (std::uint32_t di = 0; di < r.destinations.size(); ++di) {
      const auto& d = r.destinations[di];
      detail::entry e;
      e.rule = ri;
      e.dest = di;
      e.lo = d.ports.lo;
      e.hi = d.ports.hi;
      switch (d.k) {
        case destination::kind::exact:
          e.m = detail::entry::match::whole;
          m.hosts.insert(d.value, e);
          break;
        case destination::kind::string_suffix:
          e.m = detail::entry::match::suffix;
          m.hosts.insert(d.value, e);
          break;
        case destination::kind::label_suffix:
          e.m = detail::entry::match::label;
          m.hosts.insert(d.value, e);
          break;
        case destination::kind::any_host:
          // `*` is the string suffix "": it sits at the root, on every host's path.
          e.m = detail::entry::match::suffix;
          m.hosts.insert("", e);
          break;
        case destination::kind::cidr:
          (d.network.v6 ? m.v6 : m.v4).insert(d.network, d.prefix, e);
          break;
      }
    }
  }
  m.hosts.finalize();
  m.v4.finalize();
  m.v6.finalize();
  return m;
}

}  // namespace

load_result compile(policy_spec spec) {
  load_result out;
  out.errors = validator(spec).run();
  if (!out.errors.empty()) return out;

  auto im = std::make_unique<policy::impl>();
  im->full_device.fill(no_set);
  for (std::size_t si = 0; si < spec.rule_sets.size(); ++si) {
    auto& s = spec.rule_sets[si];
    for (std::size_t ri = 0; ri < s.rules.size(); ++ri)
      s.rules[ri].rank = static_cast<int>(ri + 1);
    const auto idx = static_cast<std::int32_t>(si);
    for (auto p : s.platforms) {
      const auto pi = static_cast<std::size_t>(p);
      if (s.m == mode::full_device) {
        if (im->full_device[pi] == no_set) im->full_device[pi] = idx;
        continue;
      }
      for (const auto& app : s.apps) {
        auto [it, inserted] = im->per_app.try_emplace(app);
        if (inserted) it->second.fill(no_set);
        if (it->second[pi] == no_set) it->second[pi] = idx;
      }
    }
    im->matchers.push_back(build_matcher(s));
  }
  im->spec = std::move(spec);
  out.value = std::shared_ptr<const policy>(new policy(std::move(im)));
  return out;
}

}  // namespace tunnelgate::dtr
