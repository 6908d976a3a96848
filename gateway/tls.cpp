#include "gateway/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>

namespace tunnelgate::gateway {

namespace {

void free_verdict(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                  void* /*argp*/) {
  delete static_cast<certauth::verify_result*>(ptr);
}

/// One ex_data slot for the process, claimed on first use (before any handshake runs).
int verdict_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_verdict);
  return idx;
}

void free_session_identity(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                           long /*argl*/, void* /*argp*/) {
  delete static_cast<session_identity*>(ptr);
}

/// OpenSSL copies a session for every TLS 1.3 ticket: each copy gets its own identity.
int dup_session_identity(CRYPTO_EX_DATA* /*to*/, const CRYPTO_EX_DATA* /*from*/, void** from_d,
                         int /*idx*/, long /*argl*/, void* /*argp*/) {
  if (from_d != nullptr && *from_d != nullptr) {
    *from_d = new session_identity(*static_cast<session_identity*>(*from_d));
  }
  return 1;
}

int session_index() {
  static const int idx = SSL_SESSION_get_ex_new_index(0, nullptr, nullptr, dup_session_identity,
                                                      free_session_identity);
  return idx;
}

/// The trust generation a handshake started under, as an SSL ex_data value (no allocation).
int generation_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

/// A session entering the cache: remember the device, and never resume past the certificate's
/// notAfter (the lifetime is the smaller of the two). Called for every ticket, after full and
/// resumed handshakes alike.
int on_new_session(SSL* ssl, SSL_SESSION* sess) {
  auto* kept = static_cast<session_identity*>(SSL_SESSION_get_ex_data(sess, session_index()));
  const auto* v = handshake_verdict(ssl);
  if (v != nullptr && v->ok() && v->identity) {
    // A full handshake: what certauth just accepted.
    auto id = std::make_unique<session_identity>();
    id->identity = *v->identity;
    id->trust_generation =
        reinterpret_cast<std::uintptr_t>(SSL_get_ex_data(ssl, generation_index()));
    delete kept;
    kept = id.release();
    SSL_SESSION_set_ex_data(sess, session_index(), kept);
  } else if (kept == nullptr) {
    // Neither a verified handshake nor a resumption of a remembered one (cannot happen after
    // a successful handshake): never resumable.
    SSL_SESSION_set_timeout(sess, 0);
    return 0;
  }
  // (A resumed handshake: the new ticket's session is a copy of the resumed one, identity and
  // trust generation included; a session from before a trust change is verified afresh when it
  // is resumed, session.cpp.)
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(
      kept->identity.not_after - std::chrono::system_clock::now());
  if (left.count() < static_cast<long long>(SSL_SESSION_get_timeout(sess))) {
    SSL_SESSION_set_timeout(sess, static_cast<long>(std::max<long long>(left.count(), 0)));
  }
  return 0;  // the cache keeps its own reference
}

int x509_error_for(certauth::reason r) {
  using certauth::reason;
  switch (r) {
    case reason::expired:
      return X509_V_ERR_CERT_HAS_EXPIRED;
    case reason::not_yet_valid:
      return X509_V_ERR_CERT_NOT_YET_VALID;
    case reason::revoked:
      return X509_V_ERR_CERT_REVOKED;
    case reason::crl_expired:
      return X509_V_ERR_CRL_HAS_EXPIRED;
    case reason::no_crl:
      return X509_V_ERR_UNABLE_TO_GET_CRL;
    case reason::unknown_ca:
      return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
    case reason::bad_eku:
      return X509_V_ERR_INVALID_PURPOSE;
    case reason::weak_key:
      return X509_V_ERR_EE_KEY_TOO_SMALL;
    case reason::weak_signature:
      return X509_V_ERR_CA_MD_TOO_WEAK;
    default:
      return X509_V_ERR_APPLICATION_VERIFICATION;
  }
}

int verify_callback(X509_STORE_CTX* ctx, void* arg) {
  const auto* v = static_cast<const certauth::verifier*>(arg);
  auto result = std::make_unique<certauth::verify_result>(v->verify(ctx));
  const bool ok = result->ok();
  if (!ok) X509_STORE_CTX_set_error(ctx, x509_error_for(result->code));
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl != nullptr) {
    delete static_cast<certauth::verify_result*>(SSL_get_ex_data(ssl, verdict_index()));
    SSL_set_ex_data(ssl, verdict_index(), result.release());
  }
  return ok ? 1 : 0;
}

[[noreturn]] void fail(const std::string& what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = {};
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  throw std::runtime_error(what + (e != 0 ? std::string(" (") + buf + ")" : std::string()));
}

}  // namespace

std::shared_ptr<ssl::context> make_server_context(const tls_config& cfg,
                                                  const certauth::verifier& verifier) {
  (void)verdict_index();
  (void)session_index();
  (void)generation_index();
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, cfg.min_version);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  // A device that closes TCP without close_notify (most clients on exit) is an end of stream,
  // not a fatal TLS error: a fatal error would drop its session from the cache and the next
  // connection could not resume. Inside a tunnel the application protocol frames its own data.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET |
                             SSL_OP_IGNORE_UNEXPECTED_EOF);
  // tls_socket: OpenSSL on the non-blocking descriptor. Record buffers exist only while a
  // record is in them (an idle session holds none); a write may finish record by record and be
  // retried from a moved buffer; reads take whatever the socket has (fewer syscalls).
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(c, 1);
  // Forward-secret AEAD suites only for TLS 1.2; TLS 1.3's defaults are all AEAD.
  if (SSL_CTX_set_cipher_list(c,
                              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                              "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1) {
    fail("cannot set TLS 1.2 cipher suites");
  }
  // Resumption (tls.session_tickets > 0): stateful tickets only (SSL_OP_NO_TICKET above, so a
  // TLS 1.3 ticket is a key into this process's cache and a TLS 1.2 client resumes by session
  // id). A resumed device skips certificate parsing and chain verification, not compliance:
  // the session remembers the identity and the trust generation; a CA or CRL change flushes
  // the cache, and a session from before one is verified afresh (session.cpp).
  if (cfg.session_tickets == 0) {
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(c, 0);
  } else {
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_num_tickets(c, cfg.session_tickets);
    SSL_CTX_set_timeout(c, static_cast<long>(cfg.session_lifetime.count()));
    SSL_CTX_sess_set_cache_size(c, static_cast<long>(cfg.session_cache_size));
    SSL_CTX_sess_set_new_cb(c, on_new_session);
    static constexpr unsigned char sid_ctx[] = "tunnelgate-device";
    SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
  }

  if (SSL_CTX_use_certificate_chain_file(c, cfg.cert.c_str()) != 1) {
    fail("tls.cert: cannot load the server certificate chain from " + cfg.cert.string());
  }
  if (SSL_CTX_use_PrivateKey_file(c, cfg.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("tls.key: cannot load the server private key from " + cfg.key.string());
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    fail("tls.key does not match tls.cert (" + cfg.key.string() + ", " + cfg.cert.string() + ")");
  }
  // Tell clients which CAs we accept, so they pick the device certificate.
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.client_ca.c_str())) {
    SSL_CTX_set_client_CA_list(c, names);
  } else {
    fail("tls.client_ca: no CA certificate in " + cfg.client_ca.string());
  }
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(c, verify_callback, const_cast<certauth::verifier*>(&verifier));
  return ctx;
}

void set_handshake_generation(SSL* ssl, std::uint64_t generation) {
  SSL_set_ex_data(ssl, generation_index(),
                  reinterpret_cast<void*>(static_cast<std::uintptr_t>(generation)));
}

const session_identity* resumed_identity(SSL* ssl) {
  if (SSL_session_reused(ssl) != 1) return nullptr;
  const SSL_SESSION* sess = SSL_get_session(ssl);
  return sess == nullptr
             ? nullptr
             : static_cast<const session_identity*>(SSL_SESSION_get_ex_data(sess, session_index()));
}

void flush_sessions(ssl::context& ctx) {
  SSL_CTX_flush_sessions(ctx.native_handle(), 0);  // 0: every session, not only expired ones
}

const certauth::verify_result* handshake_verdict(SSL* ssl) {
  return static_cast<const certauth::verify_result*>(SSL_get_ex_data(ssl, verdict_index()));
}

}  // namespace tunnelgate::gateway
