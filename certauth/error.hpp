// Internal error helpers for certauth.
#pragma once

#include <string>

#include "certauth/certauth.hpp"

namespace tunnelgate::certauth::detail {

/// Throws std::system_error(e, message); message names the file or value and the fix.
[[noreturn]] void fail(errc e, const std::string& message);

/// Like fail(), appending the pending OpenSSL error text (if any).
[[noreturn]] void fail_openssl(errc e, const std::string& message);

}  // namespace tunnelgate::certauth::detail
