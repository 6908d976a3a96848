// The development CA behind `tunnelctl ca`. It makes certificates shaped like those a UEM
// issues (CN = UDID, SAN email = user, clientAuth), so demos and tests exercise the same paths
// as production. It is not meant to guard real devices: the root key sits in a file.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sstream>

#include <openssl/pem.h>
#include <openssl/rand.h>

#include "certauth/certauth.hpp"
#include "certauth/codec.hpp"
#include "certauth/error.hpp"
#include "certauth/identity.hpp"
#include "certauth/ossl.hpp"

namespace tunnelgate::certauth {

namespace {

using detail::fail;
using detail::fail_openssl;
namespace fs = std::filesystem;

constexpr std::string_view state_file = "state.tsv";
constexpr unsigned long first_serial = 0x1000;

// --- keys and certificates -------------------------------------------------------------------

ossl::evp_pkey_ptr generate_key(const key_spec& spec) {
  EVP_PKEY* k = nullptr;
  if (spec.type == key_spec::kind::rsa) {
    if (spec.rsa_bits < 2048 || spec.rsa_bits > 8192) {
      fail(errc::bad_argument, "RSA key size " + std::to_string(spec.rsa_bits) +
                                   " is not allowed; use 2048 to 8192 bits (certauth refuses "
                                   "smaller keys as weak_key)");
    }
    k = EVP_RSA_gen(static_cast<unsigned>(spec.rsa_bits));
  } else {
    k = EVP_EC_gen("P-256");
  }
  if (k == nullptr) fail_openssl(errc::crypto_failure, "key generation failed");
  return ossl::evp_pkey_ptr(k);
}

std::string pem_of(const X509* x) {
  ossl::bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), x) != 1)
    fail_openssl(errc::crypto_failure, "PEM encoding failed");
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

std::string pem_of_key(EVP_PKEY* k) {
  ossl::bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail_openssl(errc::crypto_failure, "key encoding failed");
  }
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

void add_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    fail_openssl(errc::bad_argument,
                 std::string("cannot set subject ") + field + "='" + value + "'");
  }
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ossl::x509_extension_ptr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    fail_openssl(errc::crypto_failure,
                 std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
}

struct cert_params {
  unsigned long serial = 0;
  std::vector<std::pair<const char*, std::string>> subject;
  long days = 365;
  std::vector<std::pair<int, std::string>> extensions;  // nid, OpenSSL config value
};

// Issues a certificate for `key` signed by (issuer, issuer_key); self-signed when issuer is null.
ossl::x509_ptr make_cert(const cert_params& p, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  ossl::x509_ptr x(X509_new());
  if (!x) fail_openssl(errc::crypto_failure, "X509_new failed");
  X509_set_version(x.get(), X509_VERSION_3);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), p.serial);
  ossl::x509_name_ptr name(X509_NAME_new());
  for (const auto& [field, value] : p.subject)
    add_entry(name.get(), field, value);
  X509_set_subject_name(x.get(), name.get());
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name.get());
  // Backdate a little so a device whose clock lags still accepts a fresh certificate.
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -300);
  X509_time_adj_ex(X509_getm_notAfter(x.get()), static_cast<int>(p.days), 0, nullptr);
  X509_set_pubkey(x.get(), key);
  for (const auto& [nid, value] : p.extensions)
    add_ext(x.get(), issuer ? issuer : x.get(), nid, value);
  if (X509_sign(x.get(), issuer_key, EVP_sha256()) <= 0)
    fail_openssl(errc::crypto_failure, "signing failed");
  return x;
}

ossl::x509_ptr read_cert(const fs::path& path) {
  const std::string data = detail::read_file(path, "certificate");
  auto parsed = detail::parse_certificates(data);
  if (!parsed.ok || parsed.certs.empty()) {
    fail(errc::ca_not_found, path.string() + " does not hold a certificate");
  }
  return std::move(parsed.certs.front());
}

ossl::evp_pkey_ptr read_key(const fs::path& path) {
  const std::string data = detail::read_file(path, "private key");
  auto bio = ossl::mem_bio(data);
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr)
    fail_openssl(errc::ca_not_found, path.string() + " does not hold a private key");
  return ossl::evp_pkey_ptr(k);
}

// --- state file ------------------------------------------------------------------------------

struct state {
  unsigned long next_serial = first_serial;
  unsigned long crl_number = 1;
  std::vector<ca_record> records;
};

std::string hex(unsigned long v) {
  char buf[32];
  (void)std::snprintf(buf, sizeof buf, "%lX", v);
  return buf;
}

std::string field_or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}
std::string dash_to_empty(const std::string& s) {
  return s == "-" ? std::string() : s;
}

std::time_t to_time(std::chrono::system_clock::time_point tp) {
  return std::chrono::system_clock::to_time_t(tp);
}

state load_state(const fs::path& dir) {
  const fs::path path = dir / state_file;
  const std::string text = detail::read_file(path, "CA state");
  state s;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  const auto bad = [&](const std::string& why) {
    fail(errc::ca_not_found, path.string() + ":" + std::to_string(lineno) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (;;) {
      const auto tab = line.find('\t', start);
      f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    try {
      if (f[0] == "next_serial" && f.size() == 2) {
        s.next_serial = std::stoul(f[1], nullptr, 16);
      } else if (f[0] == "crl_number" && f.size() == 2) {
        s.crl_number = std::stoul(f[1]);
      } else if (f[0] == "cert" && f.size() == 9) {
        ca_record r;
        r.serial = f[1];
        r.kind = f[2];
        if (f[3] != "V" && f[3] != "R") bad("status must be V or R");
        r.revoked = f[3] == "R";
        r.not_after = std::chrono::system_clock::from_time_t(std::stoll(f[4]));
        if (r.revoked) r.revoked_at = std::chrono::system_clock::from_time_t(std::stoll(f[5]));
        r.udid = dash_to_empty(f[6]);
        r.device_serial = dash_to_empty(f[7]);
        r.user = dash_to_empty(f[8]);
        s.records.push_back(std::move(r));
      } else {
        bad("unrecognised line");
      }
    } catch (const std::logic_error&) {  // stoul/stoll
      bad("bad number");
    }
  }
  return s;
}

void save_state(const fs::path& dir, const state& s) {
  std::ostringstream out;
  out << "# tunnelgate development CA state, maintained by tunnelctl ca; do not edit by hand\n"
      << "# cert <serial> <kind> <V|R> <not_after> <revoked_at> <udid> <device_serial> <user>\n"
      << "next_serial\t" << hex(s.next_serial) << "\n"
      << "crl_number\t" << s.crl_number << "\n";
  for (const auto& r : s.records) {
    out << "cert\t" << r.serial << '\t' << r.kind << '\t' << (r.revoked ? "R" : "V") << '\t'
        << to_time(r.not_after) << '\t' << (r.revoked ? to_time(r.revoked_at) : 0) << '\t'
        << field_or_dash(r.udid) << '\t' << field_or_dash(r.device_serial) << '\t'
        << field_or_dash(r.user) << '\n';
  }
  detail::write_file_atomic(dir / state_file, out.str(), 0644);
}

// Serialises tunnelctl runs on one CA directory (two `ca issue` at once must not hand out the
// same serial). Released when the descriptor closes.
class dir_lock {
 public:
  explicit dir_lock(const fs::path& dir) {
    const fs::path p = dir / ".lock";
    fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0)
      fail(errc::file_unreadable, "cannot open " + p.string() + ": " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        ::close(fd_);
        fail(errc::file_unreadable, "cannot lock " + p.string() + ": " + std::strerror(errno));
      }
    }
  }
  ~dir_lock() { ::close(fd_); }
  dir_lock(const dir_lock&) = delete;
  dir_lock& operator=(const dir_lock&) = delete;

 private:
  int fd_ = -1;
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string normal_serial(std::string_view s) {
  std::string u = upper(s);
  const auto nz = u.find_first_not_of('0');
  return nz == std::string::npos ? "0" : u.substr(nz);
}

void write_crl_file(const fs::path& dir, state& s, int days) {
  if (days < 1 || days > 365) fail(errc::bad_argument, "CRL validity must be 1 to 365 days");
  auto ca = read_cert(dir / "ca.pem");
  auto key = read_key(dir / "ca.key");
  ossl::x509_crl_ptr crl(X509_CRL_new());
  if (!crl) fail_openssl(errc::crypto_failure, "X509_CRL_new failed");
  X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get()));
  ossl::asn1_time_ptr now(X509_gmtime_adj(nullptr, 0));
  ossl::asn1_time_ptr next(X509_time_adj_ex(nullptr, days, 0, nullptr));
  X509_CRL_set1_lastUpdate(crl.get(), now.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (const auto& r : s.records) {
    if (!r.revoked) continue;
    ossl::x509_revoked_ptr rev(X509_REVOKED_new());
    ossl::bignum_ptr bn;
    BIGNUM* raw = nullptr;
    if (BN_hex2bn(&raw, r.serial.c_str()) == 0)
      fail(errc::ca_not_found, "bad serial in state: " + r.serial);
    bn.reset(raw);
    ossl::asn1_integer_ptr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    ossl::asn1_time_ptr when(ASN1_TIME_set(nullptr, to_time(r.revoked_at)));
    if (!rev || !serial || !when || X509_REVOKED_set_serialNumber(rev.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(rev.get(), when.get()) != 1 ||
        X509_CRL_add0_revoked(crl.get(), rev.get()) != 1) {
      fail_openssl(errc::crypto_failure, "cannot add a CRL entry");
    }
    (void)rev.release();  // owned by the CRL now
  }
  ossl::asn1_integer_ptr number(ASN1_INTEGER_new());
  ASN1_INTEGER_set_uint64(number.get(), s.crl_number++);
  X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca.get(), nullptr, nullptr, crl.get(), 0);
  ossl::x509_extension_ptr aki(
      X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (aki) X509_CRL_add_ext(crl.get(), aki.get(), -1);
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), key.get(), EVP_sha256()) <= 0)
    fail_openssl(errc::crypto_failure, "CRL signing failed");
  ossl::bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1)
    fail_openssl(errc::crypto_failure, "CRL encoding failed");
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &p);
  detail::write_file_atomic(dir / "crl.pem", std::string_view(p, static_cast<std::size_t>(n)),
                            0644);
}

ca_record record_of(X509* x, const std::string& kind, const std::string& udid,
                    const std::string& device_serial, const std::string& user) {
  ca_record r;
  r.serial = detail::serial_hex(X509_get0_serialNumber(x));
  r.kind = kind;
  r.udid = udid;
  r.device_serial = device_serial;
  r.user = user;
  std::time_t na = 0;
  detail::to_time_t(X509_get0_notAfter(x), na);
  r.not_after = std::chrono::system_clock::from_time_t(na);
  return r;
}

std::string random_tag() {
  unsigned char b[3];
  if (RAND_bytes(b, sizeof b) != 1) fail_openssl(errc::crypto_failure, "RAND_bytes failed");
  char buf[8];
  (void)std::snprintf(buf, sizeof buf, "%02X%02X%02X", b[0], b[1], b[2]);
  return buf;
}

bool is_ip_literal(const std::string& s) {
  ossl::error_mark mark;
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(s.c_str());
  ASN1_OCTET_STRING_free(ip);
  return ip != nullptr;
}

}  // namespace

dev_ca dev_ca::init(const fs::path& dir, const ca_init_options& options) {
  ossl::error_mark mark;
  std::error_code ec;
  if (fs::exists(dir / "ca.pem", ec) || fs::exists(dir / state_file, ec) ||
      fs::exists(dir / "ca.key", ec)) {
    fail(errc::ca_exists, dir.string() +
                              " already holds a CA (ca.pem/ca.key/state.tsv); use another "
                              "directory or delete it first");
  }
  if (options.root_days < 1 || options.root_days > 36500 || options.server_days < 1 ||
      options.server_days > 3650) {
    fail(errc::bad_argument, "validity out of range (root 1..36500 days, server 1..3650 days)");
  }
  if (options.name.empty() || options.name.size() > 64) {
    fail(errc::bad_argument, "CA name must be 1 to 64 characters");
  }
  std::string san = "DNS:localhost,IP:127.0.0.1";
  for (const auto& s : options.server_sans) {
    if (is_ip_literal(s)) {
      san += ",IP:" + s;
    } else if (!s.empty() && s.size() <= 253 && std::all_of(s.begin(), s.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
                        c == '*';
               })) {
      san += ",DNS:" + s;
    } else {
      fail(errc::bad_argument,
           "server SAN '" + detail::log_safe(s) + "' is neither an IP address nor a DNS name");
    }
  }
  fs::create_directories(dir, ec);
  if (ec) fail(errc::file_unreadable, "cannot create " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  fs::create_directories(dir / "devices", ec);
  if (ec)
    fail(errc::file_unreadable,
         "cannot create " + (dir / "devices").string() + ": " + ec.message());
  dir_lock lock(dir);

  state s;
  auto root_key = generate_key(options.key);
  cert_params rp;
  rp.serial = s.next_serial++;
  rp.subject = {{"O", options.name}, {"CN", options.name + " device root " + random_tag()}};
  rp.days = options.root_days;
  rp.extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                   {NID_key_usage, "critical,keyCertSign,cRLSign"},
                   {NID_subject_key_identifier, "hash"}};
  auto root = make_cert(rp, root_key.get(), nullptr, root_key.get());

  auto server_key = generate_key(options.key);
  cert_params sp;
  sp.serial = s.next_serial++;
  sp.subject = {{"O", options.name}, {"CN", "localhost"}};
  sp.days = options.server_days;
  sp.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                   {NID_key_usage, options.key.type == key_spec::kind::rsa
                                       ? "critical,digitalSignature,keyEncipherment"
                                       : "critical,digitalSignature"},
                   {NID_ext_key_usage, "serverAuth"},
                   {NID_subject_alt_name, san},
                   {NID_subject_key_identifier, "hash"},
                   {NID_authority_key_identifier, "keyid:always"}};
  auto server = make_cert(sp, server_key.get(), root.get(), root_key.get());
  s.records.push_back(record_of(server.get(), "server", "", "", ""));

  detail::write_file_atomic(dir / "ca.key", pem_of_key(root_key.get()), 0600);
  detail::write_file_atomic(dir / "ca.pem", pem_of(root.get()), 0644);
  detail::write_file_atomic(dir / "server.key", pem_of_key(server_key.get()), 0600);
  // The server file carries the chain (leaf then root) so TLS servers can send it whole.
  detail::write_file_atomic(dir / "server.pem", pem_of(server.get()) + pem_of(root.get()), 0644);
  write_crl_file(dir, s, 7);
  save_state(dir, s);
  return dev_ca(dir);
}

dev_ca dev_ca::open(const fs::path& dir) {
  std::error_code ec;
  for (const char* f : {"ca.pem", "ca.key", "state.tsv"}) {
    if (!fs::exists(dir / f, ec)) {
      fail(errc::ca_not_found, dir.string() + " is not a tunnelgate dev CA (" + f +
                                   " is missing); run 'tunnelctl ca init " + dir.string() +
                                   "' first");
    }
  }
  return dev_ca(dir);
}

issued_certificate dev_ca::issue(const device_request& req) {
  ossl::error_mark mark;
  if (auto e = check_udid_value(req.udid); !e.empty()) fail(errc::bad_argument, "--udid: " + e);
  if (req.udid == "." || req.udid == "..")
    fail(errc::bad_argument, "--udid: '.' and '..' are not UDIDs");
  if (auto e = check_user_value(req.user); !e.empty()) fail(errc::bad_argument, "--user: " + e);
  if (req.user.find('@') == std::string::npos) {
    fail(errc::bad_argument,
         "--user: '" + req.user + "' is not an email address (it goes into the SAN email)");
  }
  if (!req.serial.empty()) {
    if (auto e = check_serial_value(req.serial); !e.empty())
      fail(errc::bad_argument, "--serial: " + e);
  }
  std::string platform;
  if (!req.platform.empty()) {
    platform = req.platform;
    for (auto& c : platform)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static constexpr std::string_view known[] = {"ios", "android", "macos", "windows", "linux"};
    if (std::find(std::begin(known), std::end(known), platform) == std::end(known)) {
      fail(errc::bad_argument, "--platform: '" + detail::log_safe(req.platform) +
                                   "' is not one of ios, android, macos, windows, linux");
    }
  }
  if (req.days < 1 || req.days > 3650) fail(errc::bad_argument, "--days must be 1 to 3650");

  dir_lock lock(dir_);
  state s = load_state(dir_);
  auto ca = read_cert(ca_cert_path());
  auto ca_key = read_key(ca_key_path());
  auto key = generate_key(req.key);

  cert_params p;
  p.serial = s.next_serial++;
  p.subject = {{"O", "tunnelgate dev devices"}};
  if (!platform.empty()) p.subject.emplace_back("OU", platform);
  p.subject.emplace_back("CN", req.udid);
  if (!req.serial.empty()) p.subject.emplace_back("serialNumber", req.serial);
  p.days = req.days;
  p.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                  {NID_key_usage, "critical,digitalSignature"},
                  {NID_ext_key_usage, "clientAuth"},
                  {NID_subject_alt_name, "email:" + req.user + ",URI:urn:udid:" + req.udid},
                  {NID_subject_key_identifier, "hash"},
                  {NID_authority_key_identifier, "keyid:always"}};
  auto cert = make_cert(p, key.get(), ca.get(), ca_key.get());

  ossl::x509_stack_ptr cas(sk_X509_new_null());
  if (!cas || sk_X509_push(cas.get(), ca.get()) <= 0)
    fail_openssl(errc::crypto_failure, "out of memory");
  X509_up_ref(ca.get());
  // OpenSSL 3 defaults: AES-256-CBC with PBKDF2 for the key and certificates, SHA-256 MAC.
  ossl::pkcs12_ptr p12(PKCS12_create(req.p12_password.c_str(), req.udid.c_str(), key.get(),
                                     cert.get(), cas.get(), 0, 0, 0, 0, 0));
  if (!p12) fail_openssl(errc::crypto_failure, "PKCS#12 creation failed");
  unsigned char* der = nullptr;
  const int der_len = i2d_PKCS12(p12.get(), &der);
  if (der_len <= 0) fail_openssl(errc::crypto_failure, "PKCS#12 encoding failed");
  ossl::openssl_buffer der_owner(der);

  issued_certificate out;
  out.serial = detail::serial_hex(X509_get0_serialNumber(cert.get()));
  out.udid = req.udid;
  out.fingerprint_sha256 = detail::fingerprint_sha256(cert.get());
  out.cert_path = dir_ / "devices" / (req.udid + ".pem");
  out.key_path = dir_ / "devices" / (req.udid + ".key");
  out.p12_path = dir_ / "devices" / (req.udid + ".p12");
  std::time_t na = 0;
  detail::to_time_t(X509_get0_notAfter(cert.get()), na);
  out.not_after = std::chrono::system_clock::from_time_t(na);

  std::error_code ec;
  fs::create_directories(dir_ / "devices", ec);
  detail::write_file_atomic(out.key_path, pem_of_key(key.get()), 0600);
  detail::write_file_atomic(out.cert_path, pem_of(cert.get()), 0644);
  detail::write_file_atomic(
      out.p12_path,
      std::string_view(reinterpret_cast<const char*>(der), static_cast<std::size_t>(der_len)),
      0600);
  s.records.push_back(record_of(cert.get(), "device", req.udid, req.serial, req.user));
  save_state(dir_, s);
  return out;
}

dev_ca::revoke_outcome dev_ca::revoke(std::string_view serial_or_udid) {
  ossl::error_mark mark;
  if (serial_or_udid.empty()) fail(errc::bad_argument, "give a certificate serial or a UDID");
  dir_lock lock(dir_);
  state s = load_state(dir_);
  const std::string want = upper(serial_or_udid);
  const std::string want_serial = normal_serial(serial_or_udid);
  revoke_outcome out;
  const auto now = std::chrono::system_clock::from_time_t(std::time(nullptr));
  for (auto& r : s.records) {
    const bool match = normal_serial(r.serial) == want_serial ||
                       (!r.udid.empty() && upper(r.udid) == want) ||
                       (!r.device_serial.empty() && upper(r.device_serial) == want);
    if (!match) continue;
    if (r.revoked) {
      out.already_revoked.push_back(r);
      continue;
    }
    r.revoked = true;
    r.revoked_at = now;
    out.revoked.push_back(r);
  }
  if (out.revoked.empty() && out.already_revoked.empty()) {
    fail(errc::no_match, "no certificate with serial, UDID or device serial '" +
                             detail::log_safe(serial_or_udid) + "' in " + dir_.string() +
                             " (see state.tsv for what was issued)");
  }
  write_crl_file(dir_, s, 7);
  save_state(dir_, s);
  return out;
}

fs::path dev_ca::write_crl(int days) {
  ossl::error_mark mark;
  dir_lock lock(dir_);
  state s = load_state(dir_);
  write_crl_file(dir_, s, days);
  save_state(dir_, s);
  return crl_path();
}

std::vector<ca_record> dev_ca::records() const {
  dir_lock lock(dir_);
  return load_state(dir_).records;
}

}  // namespace tunnelgate::certauth
