// Internal: the device-facing TLS context. Client certificates are verified by certauth inside
// the handshake (SSL_CTX_set_cert_verify_callback), so a refused device never completes it;
// the verdict, accepted or not, is attached to the SSL object for logging and metrics.
#pragma once

#include <cstdint>
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

/// What a cached TLS session remembers about its device, so a resumed handshake needs no
/// certificate parsing and no chain verification: the identity certauth extracted and the
/// trust generation (shared_state::trust_generation) the handshake started under.
struct session_identity {
  certauth::device_identity identity;
  std::uint64_t trust_generation = 0;
};

/// Before the handshake: the trust generation it runs under (stored with the session).
void set_handshake_generation(SSL* ssl, std::uint64_t generation);
/// After a resumed handshake: what the session remembers, or null (then verify afresh).
const session_identity* resumed_identity(SSL* ssl);
/// Forgets every cached session (a CA or CRL change: no ticket issued before it resumes).
void flush_sessions(ssl::context& ctx);

}  // namespace tunnelgate::gateway
