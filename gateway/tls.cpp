#include "gateway/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

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
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, cfg.min_version);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  // Forward-secret AEAD suites only for TLS 1.2; TLS 1.3's defaults are all AEAD.
  if (SSL_CTX_set_cipher_list(c,
                              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                              "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1) {
    fail("cannot set TLS 1.2 cipher suites");
  }
  // Every connection proves its certificate afresh: no session resumption, so a revoked or
  // non-compliant device cannot ride an old session.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(c, 0);

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

const certauth::verify_result* handshake_verdict(SSL* ssl) {
  return static_cast<const certauth::verify_result*>(SSL_get_ex_data(ssl, verdict_index()));
}

}  // namespace tunnelgate::gateway
