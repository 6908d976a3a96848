// A small synchronous HTTP(S) client for the uem tests and benchmark (talks to the webhook
// listener and to uem-sim's admin endpoints). Keep-alive: one connection per client object.
#pragma once

#include <map>
#include <memory>
#include <string>

namespace uem_test {

struct http_response {
  int status = 0;  ///< 0 when the connection failed or closed without an answer
  std::string body;
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string error;
};

class http_client {
 public:
  /// `ca_file` empty = plain HTTP; otherwise HTTPS verified against it (IP SAN).
  http_client(std::string ip, unsigned short port, std::string ca_file = {});
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  http_response request(const std::string& method, const std::string& target,
                        const std::string& body = {},
                        const std::map<std::string, std::string>& headers = {});
  /// Sends raw bytes on a fresh connection and returns what comes back until close.
  std::string raw(const std::string& bytes);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// "Basic base64(user:password)".
std::string basic_auth(const std::string& user, const std::string& password);

}  // namespace uem_test
