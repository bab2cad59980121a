// UTF-8 decoding shared by the filters' compiled modules (_classifier_text.cpp, _gopher.cpp).
// Their input comes from Python's UTF-8 encoder, so it is well formed: no validation here.
#pragma once

#include <cstddef>
#include <cstdint>

// The code point at s[i] (i < len) and, in *n_bytes, its byte length; a sequence cut short by
// the end of the text reads as one code point of its remaining bytes.
inline uint32_t decode_utf8(const unsigned char* s, size_t i, size_t len, size_t* n_bytes) {
  unsigned char b = s[i];
  size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  if (i + n > len) n = len - i;
  uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (s[i + k] & 0x3F);
  *n_bytes = n;
  return c;
}
