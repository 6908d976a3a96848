#include "support/support.hpp"

namespace tunnelgate::support {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tunnelgate.support"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::file_unreadable:
        return "the file cannot be read";
      case errc::file_too_large:
        return "the file is larger than allowed";
      case errc::secret_empty:
        return "the secret file is empty";
      case errc::bad_url:
        return "not an https://HOST[:PORT][/PATH] URL";
    }
    return "unknown support error";
  }
};

}  // namespace

const std::error_category& support_category() noexcept {
  static const category c;
  return c;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), support_category()};
}

}  // namespace tunnelgate::support
