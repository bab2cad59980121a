// The quality classifier's text normalisation, compiled (filters/quality_classifier.py).
//
// `words_and_punct(text: bytes, classes: bytes) -> str`: the tokens of `\w+|[^\w\s]` in the
// UTF-8 `text` (already lower-cased by Python), one space apart: a maximal run of word code
// points is one token, every other non-space code point is a token of its own. `classes` has
// one byte per code point (1: \w, 2: \s, 0: neither), built by the `regex` engine itself, so
// both paths split alike by construction; tests compare them. One call per document instead
// of a regex match object and a str per token.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <string>

#include "_utf8.h"

namespace {

constexpr uint8_t WORD = 1, SPACE = 2;

PyObject* words_and_punct(PyObject*, PyObject* args) {
  Py_buffer text, classes;
  if (!PyArg_ParseTuple(args, "y*y*", &text, &classes)) return nullptr;
  const auto* s = static_cast<const unsigned char*>(text.buf);
  const auto* cls = static_cast<const uint8_t*>(classes.buf);
  const size_t end = static_cast<size_t>(text.len), n_classes = static_cast<size_t>(classes.len);
  std::string out;
  out.reserve(end + end / 4);
  bool in_word = false;
  for (size_t i = 0; i < end;) {
    size_t n;
    uint32_t cp = decode_utf8(s, i, end, &n);
    uint8_t c = cp < n_classes ? cls[cp] : 0;
    if (c == SPACE) {
      in_word = false;
    } else {
      if (!(c == WORD && in_word) && !out.empty()) out.push_back(' ');
      out.append(reinterpret_cast<const char*>(s + i), n);
      in_word = c == WORD;
    }
    i += n;
  }
  PyBuffer_Release(&text);
  PyBuffer_Release(&classes);
  return PyUnicode_DecodeUTF8(out.data(), static_cast<Py_ssize_t>(out.size()), "surrogatepass");
}

PyMethodDef methods[] = {
    {"words_and_punct", words_and_punct, METH_VARARGS,
     "words_and_punct(text: bytes, classes: bytes) -> str: the \\w+|[^\\w\\s] tokens of UTF-8 text, one space apart."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_classifier_text", "The quality classifier's text normalisation.", -1,
                      methods};

}  // namespace

PyMODINIT_FUNC PyInit__classifier_text() { return PyModule_Create(&module); }
