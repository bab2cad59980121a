// GPT-2 pretokenization and counting, compiled: the distinct pretokens of a UTF-8 buffer, exactly
// as lm/pretokenize.py's `count_pretokens` finds them with the `regex` module and the pattern
//
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// never crossing a special token.
//
//   count(data: bytes, classes: bytes, specials: list[bytes]) -> dict[bytes, int] | None
//   merge_counts(total: dict, part: dict) -> None        (total[k] += v, in C)
//
// `classes` maps every code point to 0 (other), 1 (\p{L}), 2 (\p{N}) or 3 (\s); Python builds it
// from the `regex` engine itself, so the two paths agree on every code point by construction.
// `specials` come longest first (at one position the longest special wins, as in the Python
// alternation). None means `data` is not valid UTF-8: the caller decodes with replacement and
// calls again, so both paths see the same text.
//
// The alternatives, as the scanner takes them at a position i (leftmost alternative wins):
//   1. an ASCII apostrophe followed by s, d, m, t, ll, ve or re: that contraction;
//   2-4. a space followed by a letter, digit or "other" character: the space and the run of that class;
//   2-4. a letter, digit or "other" character: the run of its class (runs are greedy, no backtracking);
//   5. whitespace: the whole run if it ends the piece; else the run but its last character (which
//      the lookahead leaves to prefix the next pretoken) if the run is longer than one;
//   6. else the single whitespace character.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

enum Class : uint8_t { OTHER = 0, LETTER = 1, NUMBER = 2, SPACE = 3 };

struct Scanner {
  const unsigned char* data;
  const uint8_t* classes;
  std::unordered_map<std::string_view, int64_t> counts;

  // decodes the code point at i (< end): its class and its byte length; length 0 means invalid UTF-8
  inline size_t decode(size_t i, size_t end, uint8_t* cls) const {
    unsigned char b = data[i];
    if (b < 0x80) {
      *cls = classes[b];
      return 1;
    }
    uint32_t cp;
    size_t n;
    if (b >= 0xC2 && b <= 0xDF) {
      cp = b & 0x1F;
      n = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      cp = b & 0x0F;
      n = 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      cp = b & 0x07;
      n = 4;
    } else {
      return 0;
    }
    if (i + n > end) return 0;
    for (size_t k = 1; k < n; ++k) {
      unsigned char c = data[i + k];
      if ((c & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (c & 0x3F);
    }
    // overlong forms, surrogates and code points past U+10FFFF are invalid, as Python's decoder says
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return 0;
    *cls = classes[cp];
    return n;
  }

  // end of the run of class `cls` that starts at i; false on invalid UTF-8
  inline bool run(size_t i, size_t end, uint8_t cls, size_t* out) const {
    while (i < end) {
      uint8_t c;
      size_t n = decode(i, end, &c);
      if (n == 0) return false;
      if (c != cls) break;
      i += n;
    }
    *out = i;
    return true;
  }

  inline void emit(size_t a, size_t b) {
    ++counts[std::string_view(reinterpret_cast<const char*>(data) + a, b - a)];
  }

  static inline size_t contraction(const unsigned char* p, size_t left) {
    if (left >= 2 && (p[1] == 's' || p[1] == 'd' || p[1] == 'm' || p[1] == 't')) return 2;
    if (left >= 3 && ((p[1] == 'l' && p[2] == 'l') || (p[1] == 'v' && p[2] == 'e') || (p[1] == 'r' && p[2] == 'e')))
      return 3;
    return 0;
  }

  // pretokens of data[begin, end), a piece with no special token in it; false on invalid UTF-8
  bool piece(size_t begin, size_t end) {
    size_t i = begin;
    while (i < end) {
      uint8_t cls;
      size_t n = decode(i, end, &cls);
      if (n == 0) return false;
      if (data[i] == '\'') {
        size_t c = contraction(data + i, end - i);
        if (c) {
          emit(i, i + c);
          i += c;
          continue;
        }
      }
      if (data[i] == ' ' && i + 1 < end) {
        uint8_t next;
        size_t m = decode(i + 1, end, &next);
        if (m == 0) return false;
        if (next != SPACE) {
          size_t j;
          if (!run(i + 1 + m, end, next, &j)) return false;
          emit(i, j);
          i = j;
          continue;
        }
      }
      if (cls != SPACE) {
        size_t j;
        if (!run(i + n, end, cls, &j)) return false;
        emit(i, j);
        i = j;
        continue;
      }
      size_t last = i, j = i + n;  // `last`: where the run's last character starts
      while (j < end) {
        uint8_t c;
        size_t m = decode(j, end, &c);
        if (m == 0) return false;
        if (c != SPACE) break;
        last = j;
        j += m;
      }
      if (j < end && last > i) j = last;  // the lookahead gives the last whitespace to what follows
      emit(i, j);
      i = j;
    }
    return true;
  }
};

PyObject* count(PyObject*, PyObject* args) {
  Py_buffer text, table;
  PyObject* specials_obj;
  if (!PyArg_ParseTuple(args, "y*y*O", &text, &table, &specials_obj)) return nullptr;
  struct Release {  // the buffers are released on every return path
    Py_buffer* a;
    Py_buffer* b;
    ~Release() {
      PyBuffer_Release(a);
      PyBuffer_Release(b);
    }
  } release{&text, &table};
  if (table.len != 0x110000) {
    PyErr_SetString(PyExc_ValueError, "classes must have one byte per code point (0x110000)");
    return nullptr;
  }
  std::vector<std::string_view> specials;
  PyObject* seq = PySequence_Fast(specials_obj, "specials must be a sequence of bytes");
  if (!seq) return nullptr;
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); ++k) {
    PyObject* s = PySequence_Fast_GET_ITEM(seq, k);
    if (!PyBytes_Check(s) || PyBytes_GET_SIZE(s) == 0) {
      Py_DECREF(seq);
      PyErr_SetString(PyExc_TypeError, "specials must be non-empty bytes");
      return nullptr;
    }
    specials.emplace_back(PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s));
  }

  const size_t size = static_cast<size_t>(text.len);
  Scanner scanner{static_cast<const unsigned char*>(text.buf), static_cast<const uint8_t*>(table.buf), {}};
  scanner.counts.reserve(1 << 16);
  const std::string_view all(static_cast<const char*>(text.buf), size);
  // the next occurrence of each special at or after `pos` (npos: none left)
  std::vector<size_t> next(specials.size());
  for (size_t k = 0; k < specials.size(); ++k) next[k] = all.find(specials[k]);
  bool valid = true;
  Py_BEGIN_ALLOW_THREADS;
  size_t pos = 0;
  while (valid) {
    size_t cut = std::string_view::npos, cut_len = 0;
    for (size_t k = 0; k < specials.size(); ++k) {
      if (next[k] != std::string_view::npos && next[k] < pos) next[k] = all.find(specials[k], pos);
      if (next[k] < cut) {  // strictly earlier: at a tie the longer special, listed first, stays
        cut = next[k];
        cut_len = specials[k].size();
      }
    }
    size_t piece_end = cut == std::string_view::npos ? size : cut;
    valid = scanner.piece(pos, piece_end);
    if (cut == std::string_view::npos) break;
    pos = cut + cut_len;
  }
  Py_END_ALLOW_THREADS;
  Py_DECREF(seq);
  if (!valid) Py_RETURN_NONE;

  PyObject* out = PyDict_New();
  if (!out) return nullptr;
  for (const auto& [token, n] : scanner.counts) {
    PyObject* key = PyBytes_FromStringAndSize(token.data(), static_cast<Py_ssize_t>(token.size()));
    PyObject* value = PyLong_FromLongLong(n);
    if (!key || !value || PyDict_SetItem(out, key, value) < 0) {
      Py_XDECREF(key);
      Py_XDECREF(value);
      Py_DECREF(out);
      return nullptr;
    }
    Py_DECREF(key);
    Py_DECREF(value);
  }
  return out;
}

// total[k] += v for every item of `part`: the counts of a chunk added to the file's, without a
// Python-level loop (Counter.update costs ~1 us an item: seconds for a few million distinct pretokens)
PyObject* merge_counts(PyObject*, PyObject* args) {
  PyObject *total, *part;
  if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &total, &PyDict_Type, &part)) return nullptr;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(part, &pos, &key, &value)) {
    PyObject* have = PyDict_GetItemWithError(total, key);  // borrowed
    if (have == nullptr) {
      if (PyErr_Occurred() || PyDict_SetItem(total, key, value) < 0) return nullptr;
      continue;
    }
    PyObject* sum = PyNumber_Add(have, value);
    if (sum == nullptr) return nullptr;
    int failed = PyDict_SetItem(total, key, sum);
    Py_DECREF(sum);
    if (failed < 0) return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"count", count, METH_VARARGS, "Distinct GPT-2 pretokens of a UTF-8 buffer and their counts (None: not UTF-8)."},
    {"merge_counts", merge_counts, METH_VARARGS, "total[k] += v for k, v in part.items() (two dicts)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pretokenize", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__pretokenize(void) { return PyModule_Create(&module); }
