//===- Json.h - A strict little JSON reader for the tests -------*- C++ -*-===//
//
// Enough of RFC 8259 to check that the profiles the drivers write are valid
// JSON and to look into them; the runtime tests link no JSON library.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TEST_UNIT_JSON_H
#define KILN_TEST_UNIT_JSON_H

#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::test {

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  /// Member `key` of an object; a null value when there is none.
  const Json &operator[](const std::string &key) const {
    static const Json none;
    auto it = object.find(key);
    return it == object.end() ? none : it->second;
  }
  const Json &operator[](size_t i) const { return array.at(i); }
  size_t size() const { return kind == Array ? array.size() : object.size(); }

  /// The value `text` holds, or nothing if it is not exactly one JSON value.
  static std::optional<Json> parse(const std::string &text) {
    size_t pos = 0;
    Json v;
    if (!value(text, pos, v))
      return std::nullopt;
    skip(text, pos);
    if (pos != text.size())
      return std::nullopt;
    return v;
  }

private:
  static void skip(const std::string &t, size_t &p) {
    while (p < t.size() && (t[p] == ' ' || t[p] == '\n' || t[p] == '\r' || t[p] == '\t'))
      ++p;
  }
  static bool literal(const std::string &t, size_t &p, const char *word) {
    size_t n = std::char_traits<char>::length(word);
    if (t.compare(p, n, word) != 0)
      return false;
    p += n;
    return true;
  }
  static bool str(const std::string &t, size_t &p, std::string &out) {
    if (p >= t.size() || t[p++] != '"')
      return false;
    while (p < t.size() && t[p] != '"') {
      unsigned char c = t[p++];
      if (c < 0x20)
        return false;
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (p >= t.size())
        return false;
      char e = t[p++];
      static const std::string simple = "\"\\/bfnrt", meaning = "\"\\/\b\f\n\r\t";
      if (size_t k = simple.find(e); k != std::string::npos) {
        out += meaning[k];
      } else if (e == 'u' && p + 4 <= t.size()) {
        unsigned code = std::stoul(t.substr(p, 4), nullptr, 16);
        p += 4;
        if (code >= 0x80)
          return false; // Not needed by the tests.
        out += static_cast<char>(code);
      } else {
        return false;
      }
    }
    return p++ < t.size();
  }
  static bool value(const std::string &t, size_t &p, Json &v) {
    skip(t, p);
    if (p >= t.size())
      return false;
    char c = t[p];
    if (c == '{' || c == '[') {
      v.kind = c == '{' ? Object : Array;
      ++p;
      skip(t, p);
      char close = c == '{' ? '}' : ']';
      if (p < t.size() && t[p] == close)
        return ++p, true;
      for (;;) {
        std::string key;
        if (v.kind == Object) {
          skip(t, p);
          if (!str(t, p, key))
            return false;
          skip(t, p);
          if (p >= t.size() || t[p++] != ':')
            return false;
        }
        Json item;
        if (!value(t, p, item))
          return false;
        if (v.kind == Object && !v.object.emplace(key, std::move(item)).second)
          return false; // Duplicate key.
        if (v.kind == Array)
          v.array.push_back(std::move(item));
        skip(t, p);
        if (p < t.size() && t[p] == ',') {
          ++p;
          continue;
        }
        return p < t.size() && t[p++] == close;
      }
    }
    if (c == '"')
      return v.kind = String, str(t, p, v.string);
    if (literal(t, p, "true"))
      return v.kind = Bool, v.boolean = true, true;
    if (literal(t, p, "false"))
      return v.kind = Bool, true;
    if (literal(t, p, "null"))
      return v.kind = Null, true;
    size_t start = p;
    if (p < t.size() && t[p] == '-')
      ++p;
    if (p >= t.size() || !std::isdigit(static_cast<unsigned char>(t[p])))
      return false;
    while (p < t.size() && (std::isdigit(static_cast<unsigned char>(t[p])) ||
                            t[p] == '.' || t[p] == 'e' || t[p] == 'E' || t[p] == '+' ||
                            t[p] == '-'))
      ++p;
    char *end = nullptr;
    std::string digits = t.substr(start, p - start);
    v.kind = Number;
    v.number = std::strtod(digits.c_str(), &end);
    return end == digits.c_str() + digits.size();
  }
};

} // namespace kiln::test

#endif // KILN_TEST_UNIT_JSON_H
