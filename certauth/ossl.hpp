// RAII owners for the OpenSSL objects certauth uses, and small helpers around them. Internal.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace tunnelgate::certauth::ossl {

template <auto Free>
struct deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using x509_ptr = std::unique_ptr<X509, deleter<X509_free>>;
using x509_crl_ptr = std::unique_ptr<X509_CRL, deleter<X509_CRL_free>>;
using x509_store_ptr = std::unique_ptr<X509_STORE, deleter<X509_STORE_free>>;
using x509_store_ctx_ptr = std::unique_ptr<X509_STORE_CTX, deleter<X509_STORE_CTX_free>>;
using x509_name_ptr = std::unique_ptr<X509_NAME, deleter<X509_NAME_free>>;
using x509_extension_ptr = std::unique_ptr<X509_EXTENSION, deleter<X509_EXTENSION_free>>;
using x509_revoked_ptr = std::unique_ptr<X509_REVOKED, deleter<X509_REVOKED_free>>;
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY_free>>;
using evp_pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, deleter<EVP_PKEY_CTX_free>>;
using evp_md_ptr = std::unique_ptr<EVP_MD, deleter<EVP_MD_free>>;
using evp_md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, deleter<EVP_MD_CTX_free>>;
using bio_ptr = std::unique_ptr<BIO, deleter<BIO_free_all>>;
using asn1_time_ptr = std::unique_ptr<ASN1_TIME, deleter<ASN1_TIME_free>>;
using asn1_integer_ptr = std::unique_ptr<ASN1_INTEGER, deleter<ASN1_INTEGER_free>>;
using bignum_ptr = std::unique_ptr<BIGNUM, deleter<BN_free>>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, deleter<GENERAL_NAMES_free>>;
using eku_ptr = std::unique_ptr<EXTENDED_KEY_USAGE, deleter<EXTENDED_KEY_USAGE_free>>;
using pkcs12_ptr = std::unique_ptr<PKCS12, deleter<PKCS12_free>>;

inline void free_x509_stack(STACK_OF(X509) * s) noexcept {
  sk_X509_pop_free(s, X509_free);
}
using x509_stack_ptr = std::unique_ptr<STACK_OF(X509), deleter<free_x509_stack>>;

/// Frees a buffer OpenSSL allocated (OPENSSL_free is a macro, so it needs a function).
inline void openssl_free(void* p) noexcept {
  OPENSSL_free(p);
}
using openssl_buffer = std::unique_ptr<unsigned char, deleter<openssl_free>>;

/// Restores the thread's OpenSSL error queue on scope exit, so errors raised while we probe or
/// parse never leak into a caller's later SSL_get_error (the verifier runs inside handshakes).
class error_mark {
 public:
  error_mark() noexcept { ERR_set_mark(); }
  ~error_mark() { ERR_pop_to_mark(); }
  error_mark(const error_mark&) = delete;
  error_mark& operator=(const error_mark&) = delete;
};

/// The most recent OpenSSL error as text (empty if none); does not clear the queue.
inline std::string last_error_text() {
  const unsigned long e = ERR_peek_last_error();
  if (e == 0) return {};
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

/// A read-only memory BIO over `data` (which must outlive the BIO).
inline bio_ptr mem_bio(std::string_view data) {
  return bio_ptr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace tunnelgate::certauth::ossl
