//===- npy.cpp - NumPy .npy reader and writer -----------------------------===//
#include "npy.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::npy {
namespace {

struct Descr {
  const char *code; // Without the byte-order character.
  kiln_dtype dtype;
};
constexpr Descr descrs[] = {
    {"f2", KILN_DTYPE_F16}, {"f4", KILN_DTYPE_F32}, {"f8", KILN_DTYPE_F64},
    {"i1", KILN_DTYPE_I8},  {"i2", KILN_DTYPE_I16}, {"i4", KILN_DTYPE_I32},
    {"i8", KILN_DTYPE_I64}, {"u1", KILN_DTYPE_U8},  {"u2", KILN_DTYPE_U16},
    {"u4", KILN_DTYPE_U32}, {"u8", KILN_DTYPE_U64}, {"b1", KILN_DTYPE_BOOL},
};

/// Just enough of Python literal syntax for the header dict: strings,
/// True/False, and tuples of integers.
class HeaderParser {
public:
  explicit HeaderParser(const std::string &s) : s(s) {}

  std::string parse(std::string &descr, bool &fortran,
                    std::vector<int64_t> &shape) {
    bool haveDescr = false, haveFortran = false, haveShape = false;
    if (!eat('{'))
      return "header is not a dict";
    while (!eat('}')) {
      std::string key;
      if (!string(key) || !eat(':'))
        return "malformed header dict";
      if (key == "descr") {
        if (!string(descr))
          return "'descr' is not a simple type string (structured dtypes are "
                 "not supported)";
        haveDescr = true;
      } else if (key == "fortran_order") {
        if (word("True"))
          fortran = true;
        else if (word("False"))
          fortran = false;
        else
          return "'fortran_order' is not True or False";
        haveFortran = true;
      } else if (key == "shape") {
        if (!tuple(shape))
          return "'shape' is not a tuple of integers";
        haveShape = true;
      } else {
        return "unexpected header key '" + key + "'";
      }
      if (!eat(',') && !peek('}'))
        return "malformed header dict";
    }
    if (!haveDescr || !haveFortran || !haveShape)
      return "header lacks descr, fortran_order or shape";
    return "";
  }

private:
  void skip() {
    while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos])))
      ++pos;
  }
  bool peek(char c) {
    skip();
    return pos < s.size() && s[pos] == c;
  }
  bool eat(char c) {
    if (!peek(c))
      return false;
    ++pos;
    return true;
  }
  bool word(const char *w) {
    skip();
    size_t n = std::strlen(w);
    if (s.compare(pos, n, w) != 0)
      return false;
    pos += n;
    return true;
  }
  bool string(std::string &out) {
    skip();
    if (pos >= s.size() || (s[pos] != '\'' && s[pos] != '"'))
      return false;
    char q = s[pos++];
    size_t end = s.find(q, pos);
    if (end == std::string::npos)
      return false;
    out = s.substr(pos, end - pos);
    pos = end + 1;
    return true;
  }
  bool tuple(std::vector<int64_t> &out) {
    if (!eat('('))
      return false;
    while (!eat(')')) {
      skip();
      size_t start = pos;
      while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])))
        ++pos;
      if (start == pos || pos - start > 18)
        return false;
      out.push_back(std::stoll(s.substr(start, pos - start)));
      if (!eat(',') && !peek(')'))
        return false;
    }
    return true;
  }

  const std::string &s;
  size_t pos = 0;
};

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

bool writeAll(int fd, const void *p, size_t n) {
  auto *b = static_cast<const char *>(p);
  while (n) {
    ssize_t k = ::write(fd, b, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    b += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

} // namespace

bool isKilnDtype(int64_t t) {
  switch (t) {
  case KILN_DTYPE_F32: case KILN_DTYPE_U8: case KILN_DTYPE_I8:
  case KILN_DTYPE_U16: case KILN_DTYPE_I16: case KILN_DTYPE_I32:
  case KILN_DTYPE_I64: case KILN_DTYPE_BOOL: case KILN_DTYPE_F16:
  case KILN_DTYPE_F64: case KILN_DTYPE_U32: case KILN_DTYPE_U64:
  case KILN_DTYPE_BF16: case KILN_DTYPE_F8E4M3FN: case KILN_DTYPE_F8E4M3FNUZ:
  case KILN_DTYPE_F8E5M2: case KILN_DTYPE_F8E5M2FNUZ: case KILN_DTYPE_U4:
  case KILN_DTYPE_I4: case KILN_DTYPE_F4E2M1: case KILN_DTYPE_F8E8M0:
  case KILN_DTYPE_U2: case KILN_DTYPE_I2:
    return true;
  default:
    return false;
  }
}

std::string readFile(const std::string &path, std::vector<uint8_t> &bytes) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return path + ": " + std::strerror(errno);
  bytes.clear();
  uint8_t buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;)
    bytes.insert(bytes.end(), buf, buf + n);
  bool readError = std::ferror(f);
  std::fclose(f);
  return readError ? path + ": read error" : "";
}

std::string writeFileAtomically(const std::string &path, std::initializer_list<Piece> pieces) {
  std::string tmp = path + ".tmp.XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0)
    return path + ": cannot create temporary file: " + std::strerror(errno);
  // mkstemp makes the file 0600; give it the mode a plain create would.
  mode_t mask = ::umask(0);
  ::umask(mask);
  bool ok = ::fchmod(fd, 0666 & ~mask) == 0;
  for (const Piece &p : pieces)
    ok = ok && writeAll(fd, p.data, p.size);
  int err = errno;
  ok = (::close(fd) == 0) && ok;
  if (ok && ::rename(name.data(), path.c_str()) != 0) {
    err = errno;
    ok = false;
  }
  if (!ok) {
    ::unlink(name.data());
    return path + ": cannot write: " + std::strerror(err);
  }
  return "";
}

std::string read(const std::string &path, Array &out) {
  auto fail = [&](const std::string &msg) { return path + ": " + msg; };
  std::vector<uint8_t> bytes;
  if (std::string err = readFile(path, bytes); !err.empty())
    return err;

  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    return fail("not a .npy file (bad magic)");
  unsigned major = bytes[6], minor = bytes[7];
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = bytes[8] | (bytes[9] << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return fail("truncated header");
    headerLen = bytes[8] | (bytes[9] << 8) | (size_t(bytes[10]) << 16) |
                (size_t(bytes[11]) << 24);
    headerStart = 12;
  } else {
    return fail("unsupported .npy version " + std::to_string(major) + "." +
                std::to_string(minor));
  }
  if (headerLen > bytes.size() - headerStart)
    return fail("truncated header");
  std::string header(bytes.begin() + headerStart,
                     bytes.begin() + headerStart + headerLen);
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  if (std::string err = HeaderParser(header).parse(descr, fortran, shape);
      !err.empty())
    return fail(err);
  if (fortran)
    return fail("fortran_order arrays are not supported; save a C-order "
                "array (numpy.ascontiguousarray)");
  if (descr.size() != 3)
    return fail("unsupported dtype '" + descr + "'");
  if (descr[0] == '>')
    return fail("big-endian dtype '" + descr + "' is not supported; "
                "convert with arr.astype(arr.dtype.newbyteorder('<'))");
  if (descr[0] != '<' && descr[0] != '|' && descr[0] != '=')
    return fail("unsupported dtype '" + descr + "'");
  const Descr *match = nullptr;
  for (const Descr &d : descrs)
    if (descr.compare(1, 2, d.code) == 0)
      match = &d;
  if (!match)
    return fail("unsupported dtype '" + descr +
                "' (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)");

  uint64_t count = 1;
  for (int64_t d : shape) {
    if (d && count > (UINT64_MAX >> 4) / static_cast<uint64_t>(d))
      return fail("shape " + shapeString(shape) + " is too large");
    count *= static_cast<uint64_t>(d);
  }
  uint64_t want = count * kiln_dtype_size(match->dtype);
  uint64_t have = bytes.size() - headerStart - headerLen;
  if (have != want)
    return fail("data is " + std::to_string(have) + " bytes, expected " +
                std::to_string(want) + " for shape " + shapeString(shape) +
                " " + descr);
  out.dtype = match->dtype;
  out.shape = std::move(shape);
  out.data.assign(bytes.begin() + headerStart + headerLen, bytes.end());
  return "";
}

std::string write(const std::string &path, const Array &array) {
  const char *code = nullptr;
  for (const Descr &d : descrs)
    if (d.dtype == array.dtype)
      code = d.code;
  if (!code) {
    const char *name = kiln_dtype_name(array.dtype);
    return path + ": dtype " + (name ? name : "?") + " has no .npy equivalent";
  }
  std::string descr = std::string(kiln_dtype_size(array.dtype) == 1 ? "|" : "<") + code;
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " +
                       shapeString(array.shape) + ", }";
  // Pad so the data starts 64-byte aligned, as numpy does.
  bool v2 = header.size() + 1 + 10 > 0xffff;
  size_t prefix = v2 ? 12 : 10;
  size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  uint32_t len = static_cast<uint32_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (v2) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  out += header;

  return writeFileAtomically(path, {{out.data(), out.size()},
                                    {array.data.data(), array.data.size()}});
}

} // namespace kiln::npy
