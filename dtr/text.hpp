// Internal: checking and escaping text that comes from a rules file or a caller and ends up in
// generated files (PAC JavaScript, JSON profile), diagnostics and logs.
#pragma once

#include <string>
#include <string_view>

namespace tunnelgate::dtr::detail {

/// Empty when `s` is safe to use as a name (rule set, app id, proxy); otherwise what is wrong
/// with its first bad character, e.g. "U+000A (a control character)". Unsafe: invalid UTF-8,
/// control characters (C0, DEL, C1), U+2028/U+2029 (line terminators to JavaScript) and the
/// bidirectional formatting characters, which make a name read differently from what it is.
std::string unsafe_name_char(std::string_view s);

/// Empty when `text` is a safe name, else the diagnostic message for it: what it contains and
/// what names may not contain. `what` names the item: "name", "app id", "proxy name".
std::string name_problem(std::string_view what, std::string_view text);

/// `text` as it may appear inside a diagnostic: unchanged when unsafe_name_char(text) is empty,
/// else escaped like js_escape, so a message never carries a line break or a bidi override.
std::string shown(std::string_view text);

/// The body of a JavaScript string literal for `s` (without the quotes), in printable ASCII
/// only: `"`, `\` and everything outside 0x20-0x7e are escaped (\uXXXX, surrogate pairs above
/// U+FFFF; an invalid UTF-8 byte becomes U+FFFD). The result is therefore also safe inside a
/// `//` comment: it holds no line terminator of any JavaScript version.
std::string js_escape(std::string_view s);

}  // namespace tunnelgate::dtr::detail
