// JWK -> EVP_PKEY with the OpenSSL 3 EVP_PKEY_fromdata API, and the JWKS fetch (a coroutine on
// a private io_context, run for at most 5 s from inside the simulator's request handler).
#include "okta-sim/jwks.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/x509_vfy.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <vector>

#include "sim-common/sim_common.hpp"

namespace okta {

namespace {

namespace net = sim::net;
namespace beast = sim::beast;
namespace http = sim::http;
namespace ssl = sim::ssl;
using tcp = sim::tcp;

constexpr auto fetch_timeout = std::chrono::seconds(5);
constexpr std::uint64_t fetch_body_limit = std::uint64_t{1} << 20;

struct bn_free {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct bld_free {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct param_free {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct pctx_free {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};

std::string member(const nlohmann::json& k, const char* name) {
  const auto it = k.find(name);
  return it != k.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// A base64url member decoded; throws naming the member when absent or malformed.
std::string b64_member(const nlohmann::json& k, const char* name) {
  const auto text = member(k, name);
  auto raw = sim::base64url_decode(text);
  if (text.empty() || !raw || raw->empty()) {
    throw std::runtime_error(std::string("member \"") + name + "\" is missing or not base64url");
  }
  return std::move(*raw);
}

key_ptr from_params(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, param_free> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, pctx_free> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    throw std::runtime_error("OpenSSL refused the key");
  }
  key_ptr key(raw, EVP_PKEY_free);
  std::unique_ptr<EVP_PKEY_CTX, pctx_free> check(EVP_PKEY_CTX_new_from_pkey(nullptr, raw, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    throw std::runtime_error("the public key fails OpenSSL's check (not a valid point/modulus)");
  }
  return key;
}

key_ptr rsa_key(const nlohmann::json& k) {
  const auto n = b64_member(k, "n"), e = b64_member(k, "e");
  std::unique_ptr<BIGNUM, bn_free> bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                                                  static_cast<int>(n.size()), nullptr));
  std::unique_ptr<BIGNUM, bn_free> bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                                                  static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) throw std::runtime_error("cannot read n or e");
  if (BN_num_bits(bn_n.get()) < 2048) {
    throw std::runtime_error("RSA modulus of " + std::to_string(BN_num_bits(bn_n.get())) +
                             " bits; RS256 needs at least 2048 (RFC 7518 section 3.3)");
  }
  std::unique_ptr<OSSL_PARAM_BLD, bld_free> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    throw std::runtime_error("cannot build the RSA key");
  }
  return from_params("RSA", bld.get());
}

key_ptr ec_key(const nlohmann::json& k) {
  if (member(k, "crv") != "P-256") {
    throw std::runtime_error("crv \"" + member(k, "crv") + "\" is not supported (only P-256)");
  }
  const auto x = b64_member(k, "x"), y = b64_member(k, "y");
  if (x.size() != 32 || y.size() != 32) {
    throw std::runtime_error("x and y must be 32 bytes each for P-256 (RFC 7518 section 6.2.1)");
  }
  const std::string point = "\x04" + x + y;
  std::unique_ptr<OSSL_PARAM_BLD, bld_free> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    throw std::runtime_error("cannot build the EC key");
  }
  return from_params("EC", bld.get());
}

// ---- fetch ----------------------------------------------------------------------------------

struct fetch_job {
  net::io_context* ioc = nullptr;
  loopback_url url;
  std::vector<tcp::endpoint> endpoints;  // loopback only
  ssl::context* tls = nullptr;           // set for https
  unsigned status = 0;
  std::string body;
};

template <class Stream>
net::awaitable<void> get(Stream& stream, fetch_job* job) {
  http::request<http::empty_body> req{http::verb::get, job->url.target, 11};
  const bool v6 = job->url.host.find(':') != std::string::npos;
  req.set(http::field::host,
          (v6 ? "[" + job->url.host + "]" : job->url.host) + ":" + job->url.port);
  req.set(http::field::user_agent, "okta-sim ssf-receiver");
  req.set(http::field::accept, "application/json");
  co_await http::async_write(stream, req, net::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(fetch_body_limit);
  co_await http::async_read(stream, buffer, parser, net::use_awaitable);
  job->status = parser.get().result_int();
  job->body = parser.get().body();
}

// Objects with destructors live at function scope (GCC 12, see sim-common/server.cpp).
net::awaitable<void> run_fetch(fetch_job* job) {
  beast::tcp_stream tcp_stream(job->ioc->get_executor());
  co_await tcp_stream.async_connect(job->endpoints, net::use_awaitable);
  if (job->tls == nullptr) {
    co_await get(tcp_stream, job);
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream&> tls_stream(tcp_stream, *job->tls);
  auto* param = SSL_get0_param(tls_stream.native_handle());
  boost::system::error_code ec;
  net::ip::make_address(job->url.host, ec);
  if (!ec) {
    X509_VERIFY_PARAM_set1_ip_asc(param, job->url.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, job->url.host.c_str(), 0);
    SSL_set_tlsext_host_name(tls_stream.native_handle(), job->url.host.c_str());
  }
  co_await tls_stream.async_handshake(ssl::stream_base::client, net::use_awaitable);
  co_await get(tls_stream, job);
}

}  // namespace

std::map<std::string, jwk> parse_jwks(std::string_view text) {
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
    throw std::runtime_error("not a JWKS: expected a JSON object with a \"keys\" array");
  }
  std::map<std::string, jwk> out;
  for (const auto& k : doc["keys"]) {
    if (!k.is_object() || member(k, "kid").empty()) continue;  // unusable without a kid
    jwk entry;
    entry.alg = member(k, "alg");
    const auto kty = member(k, "kty"), use = member(k, "use");
    try {
      if (!use.empty() && use != "sig") {
        throw std::runtime_error("\"use\" is \"" + use + "\", not \"sig\"");
      }
      if (kty == "RSA") {
        entry.key = rsa_key(k);
      } else if (kty == "EC") {
        entry.key = ec_key(k);
      } else {
        throw std::runtime_error("kty \"" + kty + "\" is not supported (RSA or EC)");
      }
    } catch (const std::exception& e) {
      entry.key.reset();
      entry.error = e.what();
    }
    out[member(k, "kid")] = std::move(entry);
  }
  return out;
}

loopback_url parse_loopback_url(const std::string& url) {
  loopback_url u;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    throw std::runtime_error(url + ": the JWKS URL must start with http:// or https://");
  }
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) throw std::runtime_error(url + ": unbalanced [ in the host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw std::runtime_error(url + ": junk after ]");
      port = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  u.port = port.empty() ? (u.tls ? "443" : "80") : port;
  if (u.port.find_first_not_of("0123456789") != std::string::npos || u.port.size() > 5 ||
      std::stoul(u.port) == 0 || std::stoul(u.port) > 65535) {
    throw std::runtime_error(url + ": bad port \"" + u.port + "\"");
  }
  if (u.host == "localhost") return u;
  boost::system::error_code ec;
  const auto addr = net::ip::make_address(u.host, ec);
  if (ec || !addr.is_loopback()) {
    throw std::runtime_error(url +
                             ": okta-sim fetches a JWKS only from 127.0.0.0/8, [::1] or "
                             "localhost (a test tool must not reach out); got host \"" +
                             u.host + "\"");
  }
  return u;
}

std::string fetch_loopback(const std::string& url, const std::string& ca_file) {
  fetch_job job;
  job.url = parse_loopback_url(url);
  // Before the io_context: a coroutine still pending at the timeout is destroyed with it, and
  // its TLS stream must not outlive the context it was made from.
  ssl::context tls(ssl::context::tls_client);
  net::io_context ioc;
  job.ioc = &ioc;
  boost::system::error_code ec;
  tcp::resolver resolver(ioc);
  const auto results = resolver.resolve(job.url.host, job.url.port, ec);
  if (ec) throw std::runtime_error("JWKS " + url + ": cannot resolve: " + ec.message());
  for (const auto& r : results) {
    if (r.endpoint().address().is_loopback()) job.endpoints.push_back(r.endpoint());
  }
  if (job.endpoints.empty()) {
    throw std::runtime_error("JWKS " + url + ": " + job.url.host +
                             " resolves to no loopback address");
  }
  if (job.url.tls) {
    tls.set_verify_mode(ssl::verify_peer);
    if (ca_file.empty()) {
      tls.set_default_verify_paths();
    } else {
      tls.load_verify_file(ca_file, ec);
      if (ec) throw std::runtime_error("--ssf-ca-file " + ca_file + ": " + ec.message());
    }
    job.tls = &tls;
  }
  std::exception_ptr failure;
  bool done = false;
  net::co_spawn(ioc, run_fetch(&job), [&](const std::exception_ptr& e) {
    failure = e;
    done = true;
  });
  ioc.run_for(fetch_timeout);
  if (!done) throw std::runtime_error("JWKS " + url + ": no answer within 5 s");
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      throw std::runtime_error("JWKS " + url + ": " + e.what());
    }
  }
  if (job.status != 200) {
    throw std::runtime_error("JWKS " + url + ": HTTP " + std::to_string(job.status));
  }
  return std::move(job.body);
}

}  // namespace okta
