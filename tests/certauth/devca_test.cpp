// The development CA, and the verifier called from a real TLS handshake (in memory).
#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "fixture.hpp"

namespace certauth_test {
namespace {

using ca::reason;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 07777;
}

ca::verifier make_verifier(const ca::dev_ca& c, bool with_crl = true) {
  ca::trust_options o;
  o.ca_bundle = c.ca_cert_path();
  if (with_crl) o.crls = {c.crl_path()};
  return ca::verifier(std::make_shared<ca::trust_store>(o));
}

// The CAs are made once per process, the RSA one only when a test needs it (RSA key
// generation dominates the suite's run time otherwise).
struct ec_ca {
  pki::temp_dir dir;
  ca::dev_ca ec = ca::dev_ca::init(dir / "ec");
};
struct rsa_dev_ca {
  pki::temp_dir dir;
  ca::dev_ca rsa = ca::dev_ca::init(dir / "rsa", [] {
    ca::ca_init_options o;
    o.key = {ca::key_spec::kind::rsa, 2048};
    o.server_sans = {"gw.example.test", "10.0.0.1"};
    return o;
  }());
};
struct cas_ref {
  ca::dev_ca& ec;
  ca::dev_ca& rsa_ca() {
    static rsa_dev_ca instance;
    return instance.rsa;
  }
};
cas_ref dev() {
  static ec_ca instance;
  return {instance.ec};
}

TEST(DevCa, InitWritesFilesWithPrivateKeyModes) {
  auto& c = dev().ec;
  EXPECT_EQ(mode_of(c.ca_key_path()), 0600u);
  EXPECT_EQ(mode_of(c.server_key_path()), 0600u);
  EXPECT_EQ(mode_of(c.dir()), 0700u);
  for (const auto& p : {c.ca_cert_path(), c.server_cert_path(), c.crl_path()}) {
    EXPECT_TRUE(std::filesystem::exists(p)) << p;
  }
  EXPECT_THROW(ca::dev_ca::init(c.dir()), std::system_error);
  try {
    ca::dev_ca::init(c.dir());
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), ca::errc::ca_exists);
  }
}

TEST(DevCa, ServerCertificateHasLocalhostSansAndIsNotADeviceCert) {
  auto& c = dev().rsa_ca();
  const std::string pem = slurp(c.server_cert_path());
  auto bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(X509_check_host(x, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_host(x, "gw.example.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(x, "10.0.0.1", 0), 1);
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(x)), 2048);
  X509_free(x);
  // Signed by the device root, but serverAuth only: never accepted as a device.
  auto v = make_verifier(c);
  EXPECT_TRUE(has_code(v.verify_encoded(pem), reason::bad_eku));
}

TEST(DevCa, IssuedEcAndRsaDevicesVerifyWithDefaultMapping) {
  for (auto* c : {&dev().ec, &dev().rsa_ca()}) {
    ca::device_request req;
    req.udid = "00008030-001A2D3E0C38802E";
    req.user = "alice@example.com";
    req.serial = "C02XK1";
    req.platform = "iOS";
    const auto out = c->issue(req);
    EXPECT_EQ(mode_of(out.key_path), 0600u);
    EXPECT_EQ(mode_of(out.p12_path), 0600u);
    auto v = make_verifier(*c);
    const auto r = v.verify_encoded(slurp(out.cert_path));
    ASSERT_TRUE(has_code(r, reason::ok));
    EXPECT_EQ(r.identity->udid, req.udid);
    EXPECT_EQ(r.identity->user, req.user);
    EXPECT_EQ(r.identity->serial, "C02XK1");
    EXPECT_EQ(r.identity->certificate_serial, out.serial);
    EXPECT_EQ(r.identity->fingerprint_sha256, out.fingerprint_sha256);
    EXPECT_NE(r.identity->subject.find("OU=ios"), std::string::npos) << r.identity->subject;
  }
}

TEST(DevCa, UdidAlsoInSanUri) {
  auto& c = dev().ec;
  ca::device_request req;
  req.udid = "uri-dev-1";
  req.user = "u@example.com";
  const auto out = c.issue(req);
  ca::trust_options o;
  o.ca_bundle = c.ca_cert_path();
  ca::verify_policy p;
  p.identity.udid = {"san.uri", "urn:udid:"};
  ca::verifier v(std::make_shared<ca::trust_store>(o), p);
  const auto r = v.verify_encoded(slurp(out.cert_path));
  ASSERT_TRUE(has_code(r, reason::ok));
  EXPECT_EQ(r.identity->udid, "uri-dev-1");
}

TEST(DevCa, Pkcs12HoldsMatchingKeyAndCertificate) {
  auto& c = dev().ec;
  ca::device_request req;
  req.udid = "p12-dev";
  req.user = "p12@example.com";
  req.p12_password = "s3cret";
  const auto out = c.issue(req);
  const std::string der = slurp(out.p12_path);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  PKCS12* p12 = d2i_PKCS12(nullptr, &p, static_cast<long>(der.size()));
  ASSERT_NE(p12, nullptr);
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* extra = nullptr;
  EXPECT_EQ(PKCS12_parse(p12, "wrong", &key, &cert, &extra), 0);
  ERR_clear_error();
  ASSERT_EQ(PKCS12_parse(p12, "s3cret", &key, &cert, &extra), 1);
  EXPECT_EQ(X509_check_private_key(cert, key), 1);
  EXPECT_EQ(sk_X509_num(extra), 1);  // the root
  EVP_PKEY_free(key);
  X509_free(cert);
  sk_X509_pop_free(extra, X509_free);
  PKCS12_free(p12);
}

TEST(DevCa, RevokeByUdidAndBySerialUpdatesCrl) {
  auto& c = dev().ec;
  ca::device_request req;
  req.udid = "revoke-me";
  req.user = "r@example.com";
  const auto first = c.issue(req);
  const auto second = c.issue(req);  // re-issue: new thumbprint, same UDID
  ca::device_request other = req;
  other.udid = "keep-me";
  other.serial = "SER-9";
  const auto kept = c.issue(other);

  ca::trust_options o;
  o.ca_bundle = c.ca_cert_path();
  o.crls = {c.crl_path()};
  auto store = std::make_shared<ca::trust_store>(o);
  ca::verifier v(store);
  const std::string first_pem = slurp(first.cert_path);  // overwritten by second; read now
  EXPECT_TRUE(has_code(v.verify_encoded(slurp(second.cert_path)), reason::ok));

  const auto outcome = c.revoke("revoke-me");
  EXPECT_EQ(outcome.revoked.size(), 2u);  // both certificates of the UDID
  store->reload_if_changed();
  EXPECT_TRUE(has_code(v.verify_encoded(slurp(second.cert_path)), reason::revoked));
  EXPECT_TRUE(has_code(v.verify_encoded(slurp(kept.cert_path)), reason::ok));

  const auto again = c.revoke("REVOKE-ME");  // idempotent, case-insensitive
  EXPECT_TRUE(again.revoked.empty());
  EXPECT_EQ(again.already_revoked.size(), 2u);

  const auto by_serial = c.revoke("0" + kept.serial);  // leading zero and hex case ignored
  ASSERT_EQ(by_serial.revoked.size(), 1u);
  EXPECT_EQ(by_serial.revoked[0].udid, "keep-me");
  store->reload_if_changed();
  EXPECT_TRUE(has_code(v.verify_encoded(slurp(kept.cert_path)), reason::revoked));

  try {
    c.revoke("no-such-device");
    ADD_FAILURE() << "revoking nothing must fail";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), ca::errc::no_match);
  }
}

TEST(DevCa, WriteCrlRefreshesAndRejectsBadDays) {
  auto& c = dev().ec;
  const auto before = slurp(c.crl_path());
  c.write_crl(30);
  EXPECT_NE(slurp(c.crl_path()), before);  // new CRL number and times
  EXPECT_THROW(c.write_crl(0), std::system_error);
}

TEST(DevCa, IssueRejectsBadArguments) {
  auto& c = dev().ec;
  const auto bad = [&](const ca::device_request& r) {
    try {
      c.issue(r);
    } catch (const std::system_error& e) {
      return e.code() == ca::errc::bad_argument;
    }
    return false;
  };
  ca::device_request ok;
  ok.udid = "dev-x";
  ok.user = "x@example.com";
  auto r = ok;
  r.udid = "../etc";
  EXPECT_TRUE(bad(r));
  r = ok;
  r.udid = "..";
  EXPECT_TRUE(bad(r));
  r = ok;
  r.user = "not-an-email";
  EXPECT_TRUE(bad(r));
  r = ok;
  r.platform = "beos";
  EXPECT_TRUE(bad(r));
  r = ok;
  r.key = {ca::key_spec::kind::rsa, 1024};
  EXPECT_TRUE(bad(r));
  r = ok;
  r.days = 0;
  EXPECT_TRUE(bad(r));
}

TEST(DevCa, OpenRequiresAnInitialisedDirectory) {
  pki::temp_dir d;
  try {
    ca::dev_ca::open(d.path());
    ADD_FAILURE();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), ca::errc::ca_not_found);
    EXPECT_NE(std::string(e.what()).find("tunnelctl ca init"), std::string::npos);
  }
}

// --- TLS: the gateway's two ways of calling the verifier --------------------------------------

struct tls_pair {
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL* server = nullptr;
  SSL* client = nullptr;
  ~tls_pair() {
    SSL_free(server);
    SSL_free(client);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
  }
  // Runs the handshake over a BIO pair; true when both sides completed.
  bool handshake() {
    server = SSL_new(server_ctx);
    client = SSL_new(client_ctx);
    BIO *a = nullptr, *b = nullptr;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(server, a, a);
    SSL_set_bio(client, b, b);
    SSL_set_accept_state(server);
    SSL_set_connect_state(client);
    for (int i = 0; i < 20; ++i) {
      const int c = SSL_do_handshake(client);
      const int s = SSL_do_handshake(server);
      if (c == 1 && s == 1) return true;
      const int ce = SSL_get_error(client, c), se = SSL_get_error(server, s);
      if ((c != 1 && ce != SSL_ERROR_WANT_READ) || (s != 1 && se != SSL_ERROR_WANT_READ))
        return false;
    }
    return false;
  }
};

void load_identity(SSL_CTX* ctx, const std::filesystem::path& cert,
                   const std::filesystem::path& key) {
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM), 1);
}

struct callback_state {
  const ca::verifier* v = nullptr;
  ca::verify_result result;
};

// SSL_CTX_set_cert_verify_callback: certauth replaces X509_verify_cert for client certificates.
int verify_cb(X509_STORE_CTX* ctx, void* arg) {
  auto* st = static_cast<callback_state*>(arg);
  st->result = st->v->verify(ctx);
  if (!st->result.ok()) X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
  return st->result.ok() ? 1 : 0;
}

TEST(Tls, VerifyFromCallbackAndAfterHandshake) {
  auto& c = dev().ec;
  ca::device_request req;
  req.udid = "tls-dev";
  req.user = "tls@example.com";
  const auto dev_cert = c.issue(req);
  const auto v = make_verifier(c);
  callback_state st{&v, {}};

  tls_pair t;
  load_identity(t.server_ctx, c.server_cert_path(), c.server_key_path());
  load_identity(t.client_ctx, dev_cert.cert_path, dev_cert.key_path);
  SSL_CTX_set_verify(t.server_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(t.server_ctx, verify_cb, &st);
  ASSERT_TRUE(t.handshake());
  ASSERT_TRUE(has_code(st.result, reason::ok));
  EXPECT_EQ(st.result.identity->udid, "tls-dev");
  const auto after = v.verify(t.server);  // the same answer from the finished connection
  ASSERT_TRUE(has_code(after, reason::ok));
  EXPECT_EQ(after.identity->user, "tls@example.com");
}

TEST(Tls, RevokedDeviceFailsTheHandshake) {
  auto& c = dev().ec;
  ca::device_request req;
  req.udid = "tls-revoked";
  req.user = "tls@example.com";
  const auto dev_cert = c.issue(req);
  c.revoke("tls-revoked");
  const auto v = make_verifier(c);
  callback_state st{&v, {}};
  tls_pair t;
  load_identity(t.server_ctx, c.server_cert_path(), c.server_key_path());
  load_identity(t.client_ctx, dev_cert.cert_path, dev_cert.key_path);
  SSL_CTX_set_verify(t.server_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(t.server_ctx, verify_cb, &st);
  EXPECT_FALSE(t.handshake());
  EXPECT_TRUE(has_code(st.result, reason::revoked));
  ERR_clear_error();
}

TEST(Tls, NoClientCertificate) {
  auto& c = dev().ec;
  const auto v = make_verifier(c);
  tls_pair t;
  load_identity(t.server_ctx, c.server_cert_path(), c.server_key_path());
  SSL_CTX_set_verify(t.server_ctx, SSL_VERIFY_PEER, nullptr);  // optional: let it complete
  ASSERT_TRUE(t.handshake());
  EXPECT_TRUE(has_code(v.verify(t.server), reason::no_certificate));
}

}  // namespace
}  // namespace certauth_test
