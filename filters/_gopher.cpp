// The Gopher rules' word statistics, compiled (filters/gopher.py): repetition's n-grams and
// quality's word counts.
//
// `ngram_fractions(text: bytes, top_ns: tuple[int, ...], dup_ns: tuple[int, ...])
//      -> (top: list[float], dup: list[float])`
// over the words of the UTF-8 `text` as Python's `str.split()` cuts them:
//   top[k]: characters of the most frequent `top_ns[k]`-gram times its count, over all word
//           characters (0 when no n-gram repeats); ties go to the n-gram seen first, as
//           `Counter.most_common(1)` picks;
//   dup[k]: characters of the words inside any `dup_ns[k]`-gram that occurs more than once
//           (each word once), over all word characters.
// Characters are code points, as Python's `len`. Words become integer ids, n-grams are found
// by a rolling hash and confirmed id by id, so counts are exact. The Python functions in
// filters/gopher.py are the specification; tests compare both on real and random text.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "_utf8.h"

namespace {

// Python's str.isspace(): bidirectional class WS, B or S, or category Zs.
inline bool is_space(uint32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Calls word(start, end) with the byte range of every word, as str.split() finds them.
template <class F>
void for_each_word(const unsigned char* s, size_t len, F word) {
  size_t i = 0, start = 0, n;
  bool in_word = false;
  while (i < len) {
    uint32_t c = decode_utf8(s, i, len, &n);
    if (is_space(c)) {
      if (in_word) word(start, i), in_word = false;
    } else if (!in_word) {
      start = i, in_word = true;
    }
    i += n;
  }
  if (in_word) word(start, len);
}

inline uint32_t code_points(const unsigned char* s, size_t start, size_t end) {
  uint32_t chars = 0;
  for (size_t i = start; i < end; ++i) chars += (s[i] & 0xC0) != 0x80;
  return chars;
}

struct Words {
  std::vector<uint32_t> ids;    // word i's id (equal words, equal ids)
  std::vector<uint32_t> chars;  // word i's length in code points
  uint64_t total_chars = 0;
};

Words split_words(const unsigned char* s, size_t len) {
  Words w;
  std::unordered_map<std::string_view, uint32_t> intern;
  for_each_word(s, len, [&](size_t start, size_t end) {
    auto [it, added] = intern.try_emplace(std::string_view(reinterpret_cast<const char*>(s + start), end - start),
                                          static_cast<uint32_t>(intern.size()));
    uint32_t chars = code_points(s, start, end);
    w.ids.push_back(it->second);
    w.chars.push_back(chars);
    w.total_chars += chars;
  });
  return w;
}

// The distinct n-grams of `ids`: for every position, the position where its n-gram first
// occurs (open addressing on a rolling hash, equality confirmed on the ids).
std::vector<uint32_t> first_occurrence(const std::vector<uint32_t>& ids, size_t n) {
  const size_t grams = ids.size() - n + 1;
  size_t cap = 16, shift = 60;  // the hash's top log2(cap) bits pick the slot
  while (cap < grams * 2) cap <<= 1, --shift;
  std::vector<uint32_t> slot(cap, UINT32_MAX);  // a position whose n-gram owns the slot
  std::vector<uint32_t> first(grams);
  constexpr uint64_t B = 0x100000001B3ULL;
  uint64_t top = 1;  // B^(n-1)
  for (size_t k = 1; k < n; ++k) top *= B;
  uint64_t h = 0;
  for (size_t k = 0; k < n; ++k) h = h * B + ids[k] + 1;
  for (size_t i = 0; i < grams; ++i) {
    if (i) h = (h - (ids[i - 1] + 1) * top) * B + ids[i + n - 1] + 1;
    size_t j = static_cast<size_t>((h * 0x9E3779B97F4A7C15ULL) >> shift);
    for (;; j = (j + 1) & (cap - 1)) {
      uint32_t p = slot[j];
      if (p == UINT32_MAX) {
        slot[j] = static_cast<uint32_t>(i);
        first[i] = static_cast<uint32_t>(i);
        break;
      }
      bool same = true;
      for (size_t k = 0; k < n && same; ++k) same = ids[p + k] == ids[i + k];
      if (same) {
        first[i] = p;
        break;
      }
    }
  }
  return first;
}

double top_fraction(const Words& w, size_t n) {
  if (n == 0 || w.ids.size() < n) return 0.0;
  std::vector<uint32_t> first = first_occurrence(w.ids, n);
  std::vector<uint32_t> count(first.size(), 0);
  for (uint32_t f : first) ++count[f];
  size_t best = 0;
  for (size_t p = 1; p < count.size(); ++p)
    if (count[p] > count[best]) best = p;  // strictly more: ties keep the n-gram seen first
  if (count[best] <= 1) return 0.0;
  uint64_t chars = 0;
  for (size_t k = 0; k < n; ++k) chars += w.chars[best + k];
  return static_cast<double>(chars * count[best]) / static_cast<double>(w.total_chars ? w.total_chars : 1);
}

double dup_fraction(const Words& w, size_t n) {
  if (n == 0 || w.ids.size() < n) return 0.0;
  std::vector<uint32_t> first = first_occurrence(w.ids, n);
  std::vector<uint8_t> covered(w.ids.size(), 0);
  bool any = false;
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i] != i) {
      for (size_t k = 0; k < n; ++k) covered[first[i] + k] = covered[i + k] = 1;
      any = true;
    }
  }
  if (!any) return 0.0;
  uint64_t dup = 0;
  for (size_t i = 0; i < covered.size(); ++i)
    if (covered[i]) dup += w.chars[i];
  return static_cast<double>(dup) / static_cast<double>(w.total_chars ? w.total_chars : 1);
}

bool read_sizes(PyObject* seq, std::vector<size_t>* out) {
  PyObject* fast = PySequence_Fast(seq, "n-gram sizes must be a sequence of ints");
  if (!fast) return false;
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(fast); ++k) {
    Py_ssize_t v = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, k));
    if (v < 0) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "n-gram sizes must be >= 0");
      Py_DECREF(fast);
      return false;
    }
    out->push_back(static_cast<size_t>(v));
  }
  Py_DECREF(fast);
  return true;
}

PyObject* float_list(const std::vector<double>& values) {
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(values.size()));
  if (!list) return nullptr;
  for (size_t k = 0; k < values.size(); ++k) PyList_SET_ITEM(list, k, PyFloat_FromDouble(values[k]));
  return list;
}

PyObject* ngram_fractions(PyObject*, PyObject* args) {
  Py_buffer text;
  PyObject *top_obj, *dup_obj;
  if (!PyArg_ParseTuple(args, "y*OO", &text, &top_obj, &dup_obj)) return nullptr;
  std::vector<size_t> top_ns, dup_ns;
  if (!read_sizes(top_obj, &top_ns) || !read_sizes(dup_obj, &dup_ns)) {
    PyBuffer_Release(&text);
    return nullptr;
  }
  std::vector<double> tops, dups;
  Py_BEGIN_ALLOW_THREADS  // pure C++: a thread pool runs other documents meanwhile
  Words w = split_words(static_cast<const unsigned char*>(text.buf), static_cast<size_t>(text.len));
  for (size_t n : top_ns) tops.push_back(top_fraction(w, n));
  for (size_t n : dup_ns) dups.push_back(dup_fraction(w, n));
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&text);
  PyObject* top = float_list(tops);
  PyObject* dup = top ? float_list(dups) : nullptr;
  if (!dup) {
    Py_XDECREF(top);
    return nullptr;
  }
  return Py_BuildValue("(NN)", top, dup);
}

// `quality_counts(text: bytes, strip: str, alpha: bytes, stop_words: tuple[bytes, ...])
//      -> (words, non_symbol_words, non_symbol_chars, alpha_words, stop_words_found)`:
// the Gopher quality rule's counts over the words of `text` (str.split()): words left non-empty
// after stripping the code points of `strip` from both ends and their code points; words with a
// code point marked in `alpha` (one byte per code point, str.isalpha); how many distinct
// `stop_words` (lower-case ASCII) some stripped word equals when lower-cased. Only ASCII words
// are lower-cased here: no other word lower-cases to an ASCII stop word (the tests check every
// code point's lower case).
PyObject* quality_counts(PyObject*, PyObject* args) {
  Py_buffer text, alpha;
  const char* strip_utf8;
  Py_ssize_t strip_len;
  PyObject* stop_obj;
  if (!PyArg_ParseTuple(args, "y*s#y*O", &text, &strip_utf8, &strip_len, &alpha, &stop_obj)) return nullptr;
  std::vector<std::string> stop_words;
  PyObject* fast = PySequence_Fast(stop_obj, "stop_words must be a sequence of bytes");
  if (fast) {
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(fast); ++k) {
      PyObject* item = PySequence_Fast_GET_ITEM(fast, k);
      if (!PyBytes_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "stop_words must be bytes");
        break;
      }
      stop_words.emplace_back(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item));
    }
    Py_DECREF(fast);
  }
  if (PyErr_Occurred()) {
    PyBuffer_Release(&text);
    PyBuffer_Release(&alpha);
    return nullptr;
  }
  std::vector<uint32_t> strip;
  {
    const auto* u = reinterpret_cast<const unsigned char*>(strip_utf8);
    size_t n;
    for (size_t i = 0; i < static_cast<size_t>(strip_len); i += n) strip.push_back(decode_utf8(u, i, strip_len, &n));
  }
  const auto* s = static_cast<const unsigned char*>(text.buf);
  const size_t len = static_cast<size_t>(text.len);
  const auto* is_alpha = static_cast<const uint8_t*>(alpha.buf);
  const size_t n_alpha = static_cast<size_t>(alpha.len);
  uint64_t words = 0, non_symbol = 0, non_symbol_chars = 0, alpha_words = 0;
  std::vector<bool> found(stop_words.size(), false);
  Py_BEGIN_ALLOW_THREADS
  std::vector<std::pair<size_t, uint32_t>> cps;  // (byte offset, code point) of the current word
  std::string lowered;
  for_each_word(s, len, [&](size_t start, size_t end) {
    ++words;
    cps.clear();
    size_t n;
    bool has_alpha = false;
    for (size_t i = start; i < end; i += n) {
      uint32_t c = decode_utf8(s, i, end, &n);
      cps.emplace_back(i, c);
      has_alpha |= c < n_alpha && is_alpha[c];
    }
    alpha_words += has_alpha;
    auto stripped = [&](uint32_t c) { return std::find(strip.begin(), strip.end(), c) != strip.end(); };
    size_t lo = 0, hi = cps.size();
    while (lo < hi && stripped(cps[lo].second)) ++lo;
    while (hi > lo && stripped(cps[hi - 1].second)) --hi;
    if (lo == hi) return;
    ++non_symbol;
    non_symbol_chars += hi - lo;
    size_t b0 = cps[lo].first, b1 = hi < cps.size() ? cps[hi].first : end;
    lowered.assign(reinterpret_cast<const char*>(s + b0), b1 - b0);
    bool ascii = true;
    for (char& ch : lowered) {
      ascii &= static_cast<unsigned char>(ch) < 0x80;
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    }
    if (!ascii) return;
    for (size_t k = 0; k < stop_words.size(); ++k) found[k] = found[k] || lowered == stop_words[k];
  });
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&text);
  PyBuffer_Release(&alpha);
  size_t stop_found = static_cast<size_t>(std::count(found.begin(), found.end(), true));
  return Py_BuildValue("(KKKKn)", static_cast<unsigned long long>(words), static_cast<unsigned long long>(non_symbol),
                       static_cast<unsigned long long>(non_symbol_chars), static_cast<unsigned long long>(alpha_words),
                       static_cast<Py_ssize_t>(stop_found));
}

PyMethodDef methods[] = {
    {"ngram_fractions", ngram_fractions, METH_VARARGS,
     "ngram_fractions(text: bytes, top_ns, dup_ns) -> (top fractions, duplicate fractions): Gopher's word n-gram "
     "repetition statistics."},
    {"quality_counts", quality_counts, METH_VARARGS,
     "quality_counts(text: bytes, strip: str, alpha: bytes, stop_words) -> (words, non_symbol_words, "
     "non_symbol_chars, alpha_words, stop_words_found): Gopher's quality counts."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gopher", "Gopher rule statistics.", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__gopher() { return PyModule_Create(&module); }
