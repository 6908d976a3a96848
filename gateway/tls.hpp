// Internal: the device-facing TLS context. Client certificates are verified by certauth inside
// the handshake (SSL_CTX_set_cert_verify_callback), so a refused device never completes it;
// the verdict, accepted or not, is attached to the SSL object for logging and metrics.
#pragma once

#include <memory>
#include <optional>

#include "certauth/certauth.hpp"
#include "gateway/config.hpp"
#include "gateway/net.hpp"

namespace tunnelgate::gateway {

/// Builds the server context from `cfg.tls`. Throws std::runtime_error naming the file and fix.
/// `verifier` must outlive the context.
std::shared_ptr<ssl::context> make_server_context(const tls_config& cfg,
                                                  const certauth::verifier& verifier);

/// The certauth verdict recorded during the handshake of `ssl`, if the callback ran.
const certauth::verify_result* handshake_verdict(SSL* ssl);

}  // namespace tunnelgate::gateway
