#include "certauth/identity.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "certauth/error.hpp"

namespace tunnelgate::certauth {

namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Shared shape of the three value checks: a length bound and an allow-list of characters.
// An allow-list (not a deny-list) because these values end up in log lines, metric labels,
// URL query strings (UEM lookups) and file names; anything unexpected is refused.
std::string check_chars(std::string_view v, std::size_t max, std::string_view extra,
                        std::string_view what) {
  if (v.empty()) return std::string(what) + " is empty";
  if (v.size() > max) {
    return std::string(what) + " is " + std::to_string(v.size()) + " characters long (at most " +
           std::to_string(max) + " allowed)";
  }
  for (char c : v) {
    if (is_alnum(c) || extra.find(c) != std::string_view::npos) continue;
    char buf[8];
    (void)std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
    const bool printable = c > 0x20 && c < 0x7f;
    return std::string(what) + " contains the character " +
           (printable ? "'" + std::string(1, c) + "'" : std::string(buf)) +
           " (allowed: A-Z a-z 0-9 " + std::string(extra) + ")";
  }
  return {};
}

}  // namespace

std::string check_udid_value(std::string_view v) {
  return check_chars(v, 128, "._:-", "UDID");
}

std::string check_serial_value(std::string_view v) {
  return check_chars(v, 64, "._-", "serial number");
}

std::string check_user_value(std::string_view v) {
  if (auto e = check_chars(v, 254, "._+@-", "user"); !e.empty()) return e;
  const auto at = v.find('@');
  if (at == std::string_view::npos) return {};
  if (v.find('@', at + 1) != std::string_view::npos) return "user contains more than one '@'";
  if (at == 0 || at + 1 == v.size()) return "user has nothing on one side of '@'";
  return {};
}

namespace detail {

std::string log_safe(std::string_view raw, std::size_t max) {
  std::string out;
  for (unsigned char c : raw) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      (void)std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

compiled_field compile_field(const field_mapping& m, std::string_view which, bool optional) {
  compiled_field f;
  f.source = m.source;
  f.prefix = m.prefix;
  const std::string_view s = m.source;
  const auto bad = [&](const std::string& why) {
    fail(errc::bad_config, "identity mapping " + std::string(which) + ": source '" + log_safe(s) +
                               "' " + why +
                               " (use subject.<attr>, san.email, san.uri, san.dns or san.upn)");
  };
  if (s.empty()) {
    if (!optional) bad("is empty");
    return f;
  }
  if (s == "san.email") {
    f.type = compiled_field::kind::san_email;
  } else if (s == "san.uri") {
    f.type = compiled_field::kind::san_uri;
  } else if (s == "san.dns") {
    f.type = compiled_field::kind::san_dns;
  } else if (s == "san.upn") {
    f.type = compiled_field::kind::san_upn;
  } else if (s.starts_with("subject.") && s.size() > 8) {
    const std::string attr(s.substr(8));
    ossl::error_mark mark;
    ASN1_OBJECT* obj = OBJ_txt2obj(attr.c_str(), 0);
    if (obj == nullptr) bad("names an unknown subject attribute");
    f.type = compiled_field::kind::subject;
    f.attribute = std::shared_ptr<ASN1_OBJECT>(obj, ASN1_OBJECT_free);
  } else {
    bad("is not recognised");
  }
  if (m.prefix.size() > 64 || log_safe(m.prefix) != m.prefix) {
    fail(errc::bad_config, "identity mapping " + std::string(which) +
                               ": prefix must be at most 64 printable ASCII characters");
  }
  return f;
}

namespace {

bool iequals_prefix(std::string_view value, std::string_view prefix) {
  if (value.size() < prefix.size()) return false;
  return std::equal(prefix.begin(), prefix.end(), value.begin(), [](char a, char b) {
    const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    return lower(a) == lower(b);
  });
}

// Turns a candidate into text. IA5String and friends are taken byte for byte; other string
// types go through UTF-8. Embedded NULs (the classic "CN=good\0.evil" trick) and non-ASCII
// bytes make the value unusable rather than silently truncated or transliterated.
bool to_ascii(const ASN1_STRING* s, std::string& out) {
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return false;
  ossl::openssl_buffer owner(utf8);
  out.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
  return std::all_of(out.begin(), out.end(),
                     [](char c) { return c > 0 && static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace

extraction extract_field(X509* cert, const GENERAL_NAMES* sans, const compiled_field& f) {
  extraction r;
  std::vector<const ASN1_STRING*> raw;
  switch (f.type) {
    case compiled_field::kind::none:
      return r;
    case compiled_field::kind::subject: {
      const X509_NAME* name = X509_get_subject_name(cert);
      for (int i = X509_NAME_get_index_by_OBJ(name, f.attribute.get(), -1); i >= 0;
           i = X509_NAME_get_index_by_OBJ(name, f.attribute.get(), i)) {
        raw.push_back(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
      }
      break;
    }
    default: {
      const int n = sans ? sk_GENERAL_NAME_num(sans) : 0;
      for (int i = 0; i < n; ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
        if (f.type == compiled_field::kind::san_email && g->type == GEN_EMAIL) {
          raw.push_back(g->d.rfc822Name);
        } else if (f.type == compiled_field::kind::san_uri && g->type == GEN_URI) {
          raw.push_back(g->d.uniformResourceIdentifier);
        } else if (f.type == compiled_field::kind::san_dns && g->type == GEN_DNS) {
          raw.push_back(g->d.dNSName);
        } else if (f.type == compiled_field::kind::san_upn && g->type == GEN_OTHERNAME &&
                   OBJ_obj2nid(g->d.otherName->type_id) == NID_ms_upn) {
          const ASN1_TYPE* v = g->d.otherName->value;
          if (v == nullptr || v->type != V_ASN1_UTF8STRING) {
            r.result = extraction::status::bad_encoding;
            r.detail = f.source + " is not a UTF8String";
            return r;
          }
          raw.push_back(v->value.utf8string);
        }
      }
    }
  }

  std::vector<std::string> candidates;
  for (const ASN1_STRING* s : raw) {
    std::string text;
    if (!to_ascii(s, text)) {
      // Judge the prefix on the raw bytes so a non-matching odd value elsewhere is ignored.
      const std::string_view bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                   static_cast<std::size_t>(ASN1_STRING_length(s)));
      if (!f.prefix.empty() && !iequals_prefix(bytes, f.prefix)) continue;
      r.result = extraction::status::bad_encoding;
      r.detail = f.source + " value '" + log_safe(bytes) + "' is not plain ASCII";
      return r;
    }
    if (!f.prefix.empty()) {
      if (!iequals_prefix(text, f.prefix)) continue;
      text.erase(0, f.prefix.size());
    }
    candidates.push_back(std::move(text));
  }
  if (candidates.empty()) return r;
  if (candidates.size() > 1) {
    r.result = extraction::status::ambiguous;
    r.detail = f.source + (f.prefix.empty() ? "" : " with prefix '" + f.prefix + "'") + " has " +
               std::to_string(candidates.size()) + " values ('" + log_safe(candidates[0], 64) +
               "', '" + log_safe(candidates[1], 64) + "'); exactly one is required";
    return r;
  }
  r.result = extraction::status::found;
  r.value = std::move(candidates.front());
  return r;
}

}  // namespace detail

}  // namespace tunnelgate::certauth
